"""The pure merge rules of auth_service.domain (how each event changes an installation) and
the typed auth-code record's storage shape."""

from __future__ import annotations

from auth_service.domain import (
    AuthInfo,
    CodeRecord,
    Grant,
    InstallationRecord,
    Outcome,
    Refusal,
    installed,
    member_changed,
    regranted,
    rekeyed,
    revoked,
)

INFO = AuthInfo(corp_name="Acme", agent_id=7, auth_mode=1, members=("amy",))
GRANT = Grant("wwacme", "perm-1", INFO, "amy", "o-amy", test=False)


def _active(**changes: object) -> InstallationRecord:
    record = InstallationRecord(
        "wwacme", "active", changed_at=10.0, installed_at=10.0, updated_at=10.0,
        corp_name="Acme", agent_id=7, members=("amy",), permanent_code="perm-1",
    )  # fmt: skip
    return InstallationRecord(**{**record.__dict__, **changes})


def test_a_first_install_is_recorded_active_with_its_admitted_members() -> None:
    """A corp's first install makes an active record with the admitted members."""
    record = installed(None, GRANT, refusal=None, admitted=["amy"], occurred_at=10, now=11)
    assert record is not None
    assert (record.status, record.members, record.permanent_code) == ("active", ("amy",), "perm-1")
    assert record.installed_at == 11


def test_a_refused_first_install_keeps_its_code_and_reason() -> None:
    """A refused install is recorded refused, its permanent code kept."""
    refusal = Refusal("corps", "full")
    record = installed(None, GRANT, refusal=refusal, admitted=[], occurred_at=10, now=11)
    assert record is not None
    assert (record.status, record.reason, record.permanent_code) == ("refused", "full", "perm-1")


def test_another_member_merges_into_an_active_corp_and_a_refused_one_changes_nothing() -> None:
    """A later member merges in; a refused later member leaves the corp as it was."""
    merged = installed(_active(), GRANT, refusal=None, admitted=["ben"], occurred_at=5, now=20)
    assert merged is not None
    assert merged.members == ("amy", "ben")
    assert merged.changed_at == 10.0  # an older event never moves the clock back
    refused = Refusal("users", "full", "ben")
    assert installed(_active(), GRANT, refusal=refused, admitted=[], occurred_at=20, now=20) is None


def test_an_install_older_than_a_revocation_changes_nothing() -> None:
    """A revoked tombstone ignores an install that happened before the revocation."""
    tombstone = _active(status="revoked", changed_at=30.0)
    assert installed(tombstone, GRANT, refusal=None, admitted=[], occurred_at=20, now=40) is None


def test_rekey_revoke_regrant_and_members_respect_event_order() -> None:
    """Each rule applies to a newer event and ignores an older one."""
    current = _active()
    assert rekeyed(current, "perm-2", occurred_at=5, now=50) is None
    new_code = rekeyed(current, "perm-2", occurred_at=20, now=50)
    assert new_code is not None
    assert new_code.permanent_code == "perm-2"
    gone = revoked(current, occurred_at=20, now=50)
    assert gone is not None
    assert (gone.status, gone.permanent_code, gone.members) == ("revoked", None, ())
    assert revoked(gone, occurred_at=21, now=50) is None
    assert regranted(gone, INFO, {"amy"}, occurred_at=22, now=50) is None
    again = regranted(current, INFO, {"amy", "cy"}, occurred_at=20, now=50)
    assert again is not None
    assert again.members == ("amy", "cy")
    left = member_changed(current, "amy", present=False, occurred_at=20, now=50)
    assert left is not None
    assert left.members == ()
    assert member_changed(current, "amy", present=False, occurred_at=5, now=50) is None


def test_a_code_record_round_trips_through_its_document() -> None:
    """Every status of a code record reads back as it was written."""
    records = [
        CodeRecord("claimed", "e1", claimed_at=5.0),
        CodeRecord("exchanged", "e1", claimed_at=5.0, state_test=True, app_state="x", exchange="s"),
        CodeRecord("done", "e1", outcome=Outcome("refused", "wwacme", "Acme", "corps", "full")),
    ]
    for record in records:
        assert CodeRecord.from_doc(record.to_doc()) == record
    assert records[0].to_doc() == {"status": "claimed", "event_id": "e1", "claimed_at": 5.0}
