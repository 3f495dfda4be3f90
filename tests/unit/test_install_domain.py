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
    reclassify,
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
    # The release limits count released installs only; the test one only as a test account.
    assert ledger.usage("lifetime") == Usage(corps=1, users=1, test_accounts=1)


@pytest.mark.parametrize(
    ("corp", "members", "test", "limit"),
    [
        ("c3", ["carol"], False, "corps"),  # a third corp
        ("c1", ["carol", "dave"], False, "users"),  # 2 + 2 released users > 3
        ("c1", ["carol"], True, "test_accounts"),  # a second test account
        ("c2", ["bob"], False, "test_and_released"),  # bob has the test app
    ],
)
def test_each_limit_refuses_the_install_that_would_exceed_it(
    corp: str, members: list[str], test: bool, limit: str
) -> None:
    """Each limit refuses the install that would cross it, by name, leaving the ledger as it was."""
    ledger = installed(("c1", ["alice"], False), ("c0", ["zed"], False), ("c2", ["bob"], True))
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


def test_ten_test_installs_uninstalled_leave_every_release_slot_free() -> None:
    """WeCom's life cycle: 10 test accounts install and uninstall, then 10 real customers are
    all admitted, under the lifetime policy too."""
    limits = Limits()
    ledger = Ledger()
    for index in range(10):
        admission = admit(ledger, limits, corp_id=f"t{index}", members=["dev"], test=True)
        assert admission.admitted, admission.refusal
        ledger = release_corp(admission.ledger, f"t{index}")
    for index in range(10):
        admission = admit(ledger, limits, corp_id=f"r{index}", members=["boss"], test=False)
        assert admission.admitted, admission.refusal
        ledger = admission.ledger
    assert ledger.usage("lifetime") == Usage(corps=10, users=10, test_accounts=0)


def test_test_accounts_are_held_concurrently_and_a_freed_slot_is_reused() -> None:
    """The 11th concurrent test account is refused; one uninstalled frees its slot."""
    limits = Limits()
    ledger = installed(*((f"t{i}", ["dev"], True) for i in range(10)), limits=limits)
    eleventh = admit(ledger, limits, corp_id="t10", members=["dev"], test=True)
    assert eleventh.refusal is not None
    assert eleventh.refusal.limit == "test_accounts"
    ledger = release_corp(ledger, "t0")
    assert admit(ledger, limits, corp_id="t10", members=["dev"], test=True).admitted


def test_one_account_never_holds_test_and_released_whichever_came_second() -> None:
    """Released then test is refused as test then released is."""
    released_first = installed(("c1", ["amy"], False))
    second = admit(released_first, LIMITS, corp_id="c1", members=["amy"], test=True)
    assert second.refusal is not None
    assert second.refusal.limit == "test_and_released"


def test_reclassify_moves_a_corp_between_the_kinds_against_the_other_limits() -> None:
    """A corp recorded released and corrected to test frees its release slots; moving it back
    is re-admitted against the release limits and refused when they are full."""
    limits = Limits(corps=1, users=5, test_accounts=2)
    ledger = installed(("c1", ["amy", "ben"], False), limits=limits)
    moved = reclassify(ledger, limits, corp_id="c1", test=True)
    assert moved.admitted
    assert moved.ledger.usage("lifetime") == Usage(corps=0, users=0, test_accounts=2)
    full = admit(moved.ledger, limits, corp_id="c2", members=["cy"], test=False)
    assert full.admitted
    back = reclassify(full.ledger, limits, corp_id="c1", test=False)
    assert back.refusal is not None
    assert back.refusal.limit == "corps"
    assert back.ledger == full.ledger
    too_many = reclassify(full.ledger, Limits(1, 5, 0), corp_id="c2", test=True)
    assert too_many.refusal is not None
    assert too_many.refusal.limit == "test_accounts"


def test_a_test_account_pair_marks_its_installer_a_test_install() -> None:
    """TEST_ACCOUNTS (corp:user) marks an install by that account as a test one."""
    pairs = frozenset({"wwdev:me"})
    assert is_test_install(
        corp_id="wwdev", state_test=False, test_corp_ids=frozenset(), user_id="me",
        test_accounts=pairs,
    )  # fmt: skip
    assert not is_test_install(
        corp_id="wwdev", state_test=False, test_corp_ids=frozenset(), user_id="you",
        test_accounts=pairs,
    )  # fmt: skip


def test_a_ledger_written_before_the_released_field_reads_as_it_counted() -> None:
    """Two-field marks from an older ledger: everything not test counted as released."""
    ledger = Ledger.from_doc({"corps": {"c1": [True, False]}, "accounts": {"c1/a": [False, True]}})
    assert ledger.corps["c1"] == Mark(True, False, True)
    assert ledger.accounts["c1/a"] == Mark(False, True, False)


def test_offline_refuses_new_corps_and_members_and_keeps_the_installed() -> None:
    """INSTALLS_OPEN=false: a new corp or a new member is refused (installs_closed); what is
    installed is re-admitted unchanged."""
    ledger = installed(("c1", ["alice"], False))
    closed = Limits(corps=2, users=3, test_accounts=1, open=False)
    new_corp = admit(ledger, closed, corp_id="c2", members=["bob"], test=False)
    assert new_corp.refusal is not None
    assert (new_corp.refusal.limit, new_corp.refusal.reason) == (
        "installs_closed",
        "installs_closed",
    )
    new_member = admit(ledger, closed, corp_id="c1", members=["carol"], test=False)
    assert new_member.refusal is not None
    assert new_member.refusal.limit == "installs_closed"
    assert admit(ledger, closed, corp_id="c1", members=["alice"], test=False).admitted
    assert admit(release_corp(ledger, "c1"), closed, corp_id="c1", members=["alice"],
                 test=False).refusal is not None  # fmt: skip
