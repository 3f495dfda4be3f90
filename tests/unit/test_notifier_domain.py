"""The notifier's pure rules: send-limit windows, the ambiguous-retry options, records."""

from __future__ import annotations

import pytest

from notifier.domain import (
    MAX_DUPLICATE_INTERVAL_S,
    Failure,
    RequestRecord,
    Window,
    admit,
    app_weight,
    give_back,
    is_claimable,
    pinned_send_options,
    retry_covered,
    take_over,
)
from shared.notify import NotifyOptions, NotifyResult

MINUTE = (Window("minute", 3, 60.0, slots=6),)


def test_a_window_admits_up_to_its_limit_then_says_how_long_to_wait() -> None:
    """A window admits its limit, then refuses and says when its oldest bucket leaves."""
    counts: dict[str, dict[str, int]] = {}
    for now in (0.0, 1.0, 2.0):
        admission = admit(counts, MINUTE, 1, now, margin_s=0.0)
        assert admission.admitted
        counts = admission.counts
    refused = admit(counts, MINUTE, 1, 30.0, margin_s=0.0)
    assert not refused.admitted
    assert refused.window == "minute"
    # The first bucket (0-10 s) leaves the stretched window at 10 + 60 s.
    assert refused.wait_s == pytest.approx(40.0)
    assert admit(counts, MINUTE, 1, 70.0, margin_s=0.0).admitted


def test_no_sliding_window_ever_holds_more_than_the_limit() -> None:
    """Sends spread at random moments never put more than the limit into any 60 s span."""
    counts: dict[str, dict[str, int]] = {}
    sent: list[float] = []
    now = 0.0
    while now < 600:
        admission = admit(counts, MINUTE, 1, now, margin_s=0.5)
        if admission.admitted:
            counts = admission.counts
            sent.append(now)
        now += 0.7
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 60) <= 3
    assert len(sent) >= 25  # and the budget is mostly used


def test_a_send_heavier_than_the_limit_can_never_be_admitted() -> None:
    """A send weighing more than the whole limit is refused with no wait that could help."""
    refused = admit({}, MINUTE, 4, 0.0, margin_s=0.0)
    assert not refused.admitted
    assert refused.wait_s is None


def test_give_back_undoes_an_unsent_reservation() -> None:
    """give_back returns exactly the reservation of a send that did not go out."""
    admission = admit({}, MINUTE, 2, 5.0, margin_s=0.0)
    assert give_back(admission.counts, MINUTE, 2, 5.0) == {"minute": {"0": 0}}


def test_all_parties_and_tags_count_as_whole_groups_against_the_app() -> None:
    """Each party or tag, and an @all send, weighs as much as the whole group."""
    assert app_weight(3, 0, 0, all_members=False, group_size=100) == 3
    assert app_weight(0, 1, 1, all_members=False, group_size=100) == 200
    assert app_weight(0, 0, 0, all_members=True, group_size=100) == 100


def test_sends_always_carry_the_duplicate_check_over_the_whole_retry_window() -> None:
    """Sends get WeCom's duplicate check over the retry horizon, capped at WeCom's max."""
    forced = pinned_send_options(NotifyOptions(), horizon_s=400)
    assert forced.enable_duplicate_check == 1
    assert forced.duplicate_check_interval >= 400
    kept = pinned_send_options(
        NotifyOptions(enable_duplicate_check=1, duplicate_check_interval=3600), horizon_s=400
    )
    assert kept.duplicate_check_interval == 3600
    capped = pinned_send_options(NotifyOptions(), horizon_s=10 * MAX_DUPLICATE_INTERVAL_S)
    assert capped.duplicate_check_interval == MAX_DUPLICATE_INTERVAL_S


def test_an_ambiguous_retry_outside_the_interval_is_refused() -> None:
    """A retry is covered by the duplicate check only within its interval of the first send."""
    assert retry_covered(600, first_sent_at=100.0, now=400.0)
    assert not retry_covered(600, first_sent_at=100.0, now=700.0)


def test_taking_over_a_call_left_in_flight_makes_the_request_ambiguous() -> None:
    """A claim expired mid-call can be taken over, and the request is marked ambiguous."""
    record = RequestRecord("r1", "claimed", owner="a", claimed_until=10.0, in_flight=True)
    assert not is_claimable(record, 5.0)
    assert is_claimable(record, 10.0)
    taken = take_over(record, "b", 10.0, 60.0)
    assert (taken.owner, taken.claimed_until, taken.ambiguous, taken.in_flight) == (
        "b",
        70.0,
        True,
        False,
    )


def test_records_round_trip_through_documents() -> None:
    """A request record with its result and media ids survives to_doc/from_doc."""
    result = NotifyResult(request_id="r1", status="partial", invalid_users=["x"], attempts=2)
    record = RequestRecord("r1", "done", attempts=2, media_ids={"k": "m"}, result=result)
    assert RequestRecord.from_doc("r1", record.to_doc()) == record
    assert record.is_done


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        ("busy", True),
        ("rate_limited", True),
        ("unavailable", True),
        ("token", False),
        ("permanent", False),
    ],
)
def test_which_failures_are_retried(kind: str, retryable: bool) -> None:
    """Busy, rate-limited and unavailable failures are retried; token and permanent ones not."""
    assert Failure(kind, None, "x").is_retryable is retryable  # type: ignore[arg-type]
