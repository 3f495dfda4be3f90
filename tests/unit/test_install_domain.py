"""The install-limit ledger: admission, exclusivity, counting policies and quota warnings."""

from __future__ import annotations

import pytest

from auth_service.domain import (
    InstallationRecord,
    Ledger,
    Limits,
    Mark,
    Usage,
    admit,
    is_test_install,
    quota_warnings,
    release_corp,
    release_member,
    with_member,
)

LIMITS = Limits(corps=2, users=3, test_accounts=1)


def installed(*installs: tuple[str, list[str], bool], limits: Limits = LIMITS) -> Ledger:
    ledger = Ledger()
    for corp, members, test in installs:
        admission = admit(ledger, limits, corp_id=corp, members=members, test=test)
        assert admission.admitted, admission.refusal
        ledger = admission.ledger
    return ledger


def test_admission_counts_corps_users_and_test_accounts() -> None:
    """The ledger's usage counts each admitted corp, member and test account once."""
    ledger = installed(("c1", ["alice"], False), ("c2", ["bob"], True))
    assert ledger.usage("lifetime") == Usage(corps=2, users=2, test_accounts=1)


@pytest.mark.parametrize(
    ("corp", "members", "test", "limit"),
    [
        ("c3", ["carol"], False, "corps"),  # a third corp
        ("c1", ["carol", "dave"], False, "users"),  # 2 + 2 users > 3
        ("c1", ["carol"], True, "test_accounts"),  # a second test account
        ("c2", ["bob"], False, "test_and_released"),  # bob has the test app
    ],
)
def test_each_limit_refuses_the_install_that_would_exceed_it(
    corp: str, members: list[str], test: bool, limit: str
) -> None:
    """Each limit refuses the install that would cross it, by name, leaving the ledger as it was."""
    ledger = installed(("c1", ["alice"], False), ("c2", ["bob"], True))
    admission = admit(ledger, LIMITS, corp_id=corp, members=members, test=test)
    assert admission.refusal is not None
    assert admission.refusal.limit == limit
    assert admission.ledger == ledger  # a refusal changes nothing


def test_refusal_reasons_name_the_limit_and_its_setting() -> None:
    """A refusal reason states the limit and the environment variable that sets it."""
    ledger = installed(("c1", ["alice"], False), ("c2", ["bob"], False))
    refusal = admit(ledger, LIMITS, corp_id="c3", members=["x"], test=False).refusal
    assert refusal is not None
    assert "at most 2 enterprises" in refusal.reason
    assert "INSTALL_LIMIT_CORPS" in refusal.reason


def test_readmitting_what_is_counted_changes_nothing() -> None:
    """Admitting an already counted corp and member again succeeds without using more quota."""
    ledger = installed(("c1", ["alice"], False), ("c2", ["bob", "carol"], False))
    again = admit(ledger, LIMITS, corp_id="c2", members=["bob"], test=False)
    assert again.admitted
    assert again.ledger.usage("lifetime") == ledger.usage("lifetime")


def test_lifetime_policy_never_frees_a_slot_but_active_does() -> None:
    """Under lifetime a released corp still counts; under active its slot is free again."""
    ledger = installed(("c1", ["alice"], False), ("c2", ["bob"], False))
    ledger = release_corp(ledger, "c1")
    assert ledger.usage("lifetime").corps == 2
    assert ledger.usage("active").corps == 1
    lifetime = admit(ledger, LIMITS, corp_id="c3", members=["x"], test=False)
    assert lifetime.refusal is not None
    active = admit(ledger, Limits(2, 3, 1, "active"), corp_id="c3", members=["x"], test=False)
    assert active.admitted


def test_test_accounts_count_while_active_under_either_policy() -> None:
    """A released test install stops counting, and its member may then take the released app."""
    ledger = installed(("c1", ["alice"], True))
    ledger = release_member(ledger, "c1", "alice")
    assert ledger.usage("lifetime").test_accounts == 0
    # Once alice's test install is gone she may take the released app.
    assert admit(ledger, LIMITS, corp_id="c1", members=["alice"], test=False).admitted


def test_the_ledger_round_trips_through_its_document() -> None:
    """A ledger survives to_doc/from_doc unchanged; no document is an empty ledger."""
    ledger = installed(("c1", ["alice"], False), ("c2", ["bob"], True))
    assert Ledger.from_doc(ledger.to_doc()) == ledger
    assert Ledger.from_doc(None) == Ledger()
    assert release_corp(ledger, "c2").accounts["c2/bob"] == Mark(active=False, test=True)


def test_warnings_fire_once_when_80_and_100_percent_are_crossed() -> None:
    """Quota warnings fire for each 80 % and 100 % line crossed, once, and never at a zero limit."""
    limits = Limits(corps=10, users=100, test_accounts=10)
    before, after = Usage(7, 10, 0), Usage(8, 10, 0)
    assert [(w.limit, w.level) for w in quota_warnings(before, after, limits)] == [("corps", 80)]
    jump = quota_warnings(Usage(7, 0, 0), Usage(10, 0, 0), limits)
    assert [(w.limit, w.level, w.used) for w in jump] == [("corps", 80, 10), ("corps", 100, 10)]
    assert quota_warnings(Usage(8, 0, 0), Usage(9, 0, 0), limits) == []
    assert quota_warnings(Usage(0, 0, 0), Usage(0, 0, 0), Limits(0, 0, 0)) == []


def test_members_and_test_installs() -> None:
    """Member lists stay sorted and unique; a test install is flagged by state or by corp id."""
    assert with_member(("b",), "a", present=True) == ("a", "b")
    assert with_member(("a", "b"), "a", present=False) == ("b",)
    assert with_member(("a",), "a", present=True) == ("a",)
    assert is_test_install(corp_id="c", state_test=True, test_corp_ids=frozenset())
    assert is_test_install(corp_id="c", state_test=False, test_corp_ids=frozenset({"c"}))
    assert not is_test_install(corp_id="c", state_test=False, test_corp_ids=frozenset({"d"}))


def test_events_in_the_same_second_are_not_older() -> None:
    """An event stamped in the same whole second as the record applies; an earlier one not."""
    record = InstallationRecord(
        "c", "active", changed_at=100.7, installed_at=100.7, updated_at=100.7
    )
    assert record.applies(100.0)  # a cancel_auth stamped by WeCom in the same second
    assert record.applies(101.0)
    assert not record.applies(99.99)
