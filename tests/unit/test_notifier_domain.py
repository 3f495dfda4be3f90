"""The notifier's pure rules: send-limit windows, the ambiguous-retry options, records."""

from __future__ import annotations

from dataclasses import replace

import pytest

from notifier.domain import (
    MAX_DUPLICATE_INTERVAL_S,
    DuplicatePlan,
    EarlierSend,
    Failure,
    RequestRecord,
    Window,
    admit,
    app_weight,
    give_back,
    is_claimable,
    next_slot,
    plan_duplicate_check,
    retry_covered,
    take_over,
    without_slot,
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


def plan(
    options: NotifyOptions,
    earlier: dict[str, list[EarlierSend]] | None = None,
    *,
    recipients: tuple[str, ...] = ("alice",),
    now: float = 1000.0,
    horizon_s: float = 400,
) -> DuplicatePlan:
    return plan_duplicate_check(
        options,
        request_id="mine",
        recipients=list(recipients),
        earlier=earlier or {},
        now=now,
        horizon_s=horizon_s,
    )


def test_unset_duplicate_check_covers_the_whole_retry_window() -> None:
    """Left null, the check is on over the retry schedule (capped at 4 h), retries are safe."""
    forced = plan(NotifyOptions())
    assert forced.check
    assert forced.retry_safe
    assert forced.interval >= 400
    assert plan(NotifyOptions(duplicate_check_interval=3600)).interval == 3600
    capped = plan(NotifyOptions(), horizon_s=10 * MAX_DUPLICATE_INTERVAL_S)
    assert capped.interval == MAX_DUPLICATE_INTERVAL_S


def test_unset_duplicate_check_is_off_when_the_same_content_went_out_recently() -> None:
    """A distinct request whose content an overlapping recipient got recently goes out
    unchecked (WeCom might hold it back), and an ambiguous failure then is not retried."""
    other = EarlierSend("other", 900.0, checked=True, interval=600)
    held = plan(NotifyOptions(), {"alice": [other]})
    assert not held.check
    assert not held.retry_safe
    # Another member, an old send, or the request's own earlier attempt do not count.
    assert plan(NotifyOptions(), {"bob": [other]}).check
    assert plan(NotifyOptions(), {"alice": [other]}, now=900.0 + 601).check
    assert plan(NotifyOptions(), {"alice": [replace(other, request_id="mine")]}).check
    # A party, tag or @all may reach anyone.
    assert not plan(NotifyOptions(), {"*": [other]}).check
    assert not plan(NotifyOptions(), {"bob": [other]}, recipients=("*",)).check
    # The earlier send's own longer interval counts too.
    long_ago = EarlierSend("other", 0.0, checked=True, interval=4000)
    assert not plan(NotifyOptions(), {"alice": [long_ago]}, now=3000.0).check


def test_the_callers_duplicate_check_is_honoured() -> None:
    """1 is on with the caller's interval (1800 by default), naming the members that got the
    same content from a checked send within it; 0 is off and never retried if ambiguous."""
    checked = EarlierSend("other", 900.0, checked=True, interval=60)
    unchecked = EarlierSend("third", 950.0, checked=False, interval=1800)
    on = plan(
        NotifyOptions(enable_duplicate_check=1),
        {"alice": [checked], "bob": [unchecked]},
        recipients=("alice", "bob"),
    )
    assert (on.check, on.interval, on.retry_safe) == (True, 1800, True)
    assert on.duplicate_users == ("alice",)
    short = plan(
        NotifyOptions(enable_duplicate_check=1, duplicate_check_interval=50), {"alice": [checked]}
    )
    assert short.duplicate_users == ()
    off = plan(NotifyOptions(enable_duplicate_check=0), {"alice": [checked]})
    assert (off.check, off.retry_safe) == (False, False)


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


PER_MEMBER = (Window("minute", 30, 60.0), Window("hour", 1000, 3600.0))


def test_the_31st_message_in_a_minute_is_scheduled_when_the_first_leaves_the_window() -> None:
    """30 at once go now; the 31st exactly one window plus the margin after the first."""
    times: list[float] = []
    slots = []
    for _ in range(31):
        slot, times = next_slot(times, PER_MEMBER, now=100.0, margin_s=1.0)
        slots.append(slot)
    assert slots[:30] == [100.0] * 30
    assert slots[30] == 161.0


def test_slots_of_one_member_never_go_backwards() -> None:
    """A later booking never gets an earlier slot than the member's last one."""
    times = [100.0, 150.0]
    slot, _ = next_slot(times, PER_MEMBER, now=120.0, margin_s=1.0)
    assert slot == 150.0


def test_the_1001st_message_in_an_hour_waits_for_the_hour_window() -> None:
    """1000 spread over the hour (30 a minute) fill it; the next waits for the first to leave."""
    times = [100.0 + 61.0 * (n // 30) + n % 30 * 0.01 for n in range(1000)]
    slot, kept = next_slot(times, PER_MEMBER, now=times[-1], margin_s=1.0)
    assert slot == 100.0 + 3601.0
    assert len(kept) == 1001
    # Once the hour has passed, the old times are dropped.
    _, pruned = next_slot(kept, PER_MEMBER, now=slot + 3602.0, margin_s=1.0)
    assert len(pruned) == 1


def test_a_slot_given_back_is_free_again() -> None:
    """without_slot takes out one occurrence of an unsent slot."""
    assert without_slot([1.0, 2.0, 2.0], 2.0) == [1.0, 2.0]
    assert without_slot([1.0], 5.0) == [1.0]
