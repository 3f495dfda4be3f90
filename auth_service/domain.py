"""Pure install logic: the install-limit ledger and its admission rules, quota warnings, the
installation record and how each event changes it, and the auth-code record. No I/O here, so
every rule is unit-tested.

The ledger is one small document (at most a few hundred accounts: WeCom allows 10 corps and
100 users) updated by compare-and-set, which is what makes concurrent admissions atomic on
both store backends without transactions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shared.contracts import InstallLimit

CountingPolicy = Literal["lifetime", "active"]
LimitName = Literal["corps", "users", "test_accounts"]
LIMIT_NAMES: tuple[LimitName, ...] = ("corps", "users", "test_accounts")
WARNING_LEVELS: tuple[Literal[80, 100], ...] = (80, 100)


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps in force (``INSTALL_LIMIT_*``) and how uses are counted.

    The release limits (``corps``, ``users``) count released installs only; test installs
    count only against ``test_accounts`` (protocol doc §13.3 lists them apart: 10 enterprises
    and 100 users may install the app, and up to 10 test accounts per app at a time).
    ``lifetime`` counts every corp and user that ever had the released app, uninstalled or
    not: WeCom's rule does not say an uninstall frees a slot, so the safe reading never admits
    an install WeCom might count against the app. ``active`` counts only current released
    installs. Test accounts are always counted while active: WeCom's words are "at a time".
    """

    corps: int = 10
    users: int = 100
    test_accounts: int = 10
    policy: CountingPolicy = "lifetime"
    # False: the app is offline (INSTALLS_OPEN=false, seed §4.2): no new corps or members.
    open: bool = True

    def of(self, name: LimitName) -> int:
        value: int = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Mark:
    """A corp or an account (corp + user) in the ledger: active or not, test or released now,
    and whether it ever had the released app (what the ``lifetime`` policy counts)."""

    active: bool
    test: bool
    released: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    corps: int
    users: int
    test_accounts: int

    def of(self, name: LimitName) -> int:
        value: int = getattr(self, name)
        return value


def account_key(corp_id: str, user_id: str) -> str:
    """An account: user ids are per corp (and opaque per app), so a user is (corp, user)."""
    return f"{corp_id}/{user_id}"


@dataclass(frozen=True)
class Ledger:
    corps: dict[str, Mark] = field(default_factory=dict)
    accounts: dict[str, Mark] = field(default_factory=dict)

    def usage(self, policy: CountingPolicy) -> Usage:
        def counted(marks: dict[str, Mark]) -> int:
            if policy == "lifetime":
                return sum(m.released for m in marks.values())
            return sum(m.active and not m.test for m in marks.values())

        return Usage(
            corps=counted(self.corps),
            users=counted(self.accounts),
            test_accounts=sum(m.active and m.test for m in self.accounts.values()),
        )

    def to_doc(self) -> dict[str, Any]:
        def marks(items: dict[str, Mark]) -> dict[str, list[bool]]:
            return {k: [m.active, m.test, m.released] for k, m in sorted(items.items())}

        return {"corps": marks(self.corps), "accounts": marks(self.accounts)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Ledger:
        if not doc:
            return cls()

        def mark(value: list[bool]) -> Mark:
            # A ledger written before the third field: everything not test was released.
            released = bool(value[2]) if len(value) > 2 else not value[1]
            return Mark(bool(value[0]), bool(value[1]), released)

        return cls(
            corps={k: mark(v) for k, v in doc.get("corps", {}).items()},
            accounts={k: mark(v) for k, v in doc.get("accounts", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: InstallLimit
    reason: str
    user_id: str | None = None


@dataclass(frozen=True)
class Admission:
    """The outcome of an admission: the new ledger, or the refusal (ledger unchanged)."""

    ledger: Ledger
    refusal: Refusal | None = None

    @property
    def admitted(self) -> bool:
        return self.refusal is None


def _reason(limit: InstallLimit, limits: Limits) -> str:
    if limit == "installs_closed":
        return "installs_closed"
    if limit == "test_and_released":
        return (
            "one WeCom account cannot have both the test and the released app installed "
            "(protocol doc §13.3)"
        )
    names = {
        "corps": ("enterprises", "INSTALL_LIMIT_CORPS"),
        "users": ("users", "INSTALL_LIMIT_USERS"),
        "test_accounts": ("test accounts at a time", "INSTALL_LIMIT_TEST_ACCOUNTS"),
    }
    what, setting = names[limit]
    return f"the app may be installed by at most {limits.of(limit)} {what} ({setting})"


def _already_in(ledger: Ledger, corp_id: str, members: list[str]) -> bool:
    """Whether the corp and every one of ``members`` have the app now."""
    corp = ledger.corps.get(corp_id)
    if corp is None or not corp.active:
        return False
    return all(
        (mark := ledger.accounts.get(account_key(corp_id, user))) is not None and mark.active
        for user in members
    )


def _one(members: list[str]) -> str | None:
    return members[0] if len(members) == 1 else None


def admit(
    ledger: Ledger, limits: Limits, *, corp_id: str, members: list[str], test: bool
) -> Admission:
    """Admit ``members`` of ``corp_id`` (an install, or a member joining an installed corp).

    All or nothing: one limit that would be exceeded refuses the whole admission, so a corp is
    never half-installed. Re-admitting what the ledger already counts changes no count, which
    makes a redelivered install idempotent.
    """
    if not limits.open and not _already_in(ledger, corp_id, members):
        # Offline: WeCom stops new installs, existing ones keep working (§13.3).
        return Admission(ledger, Refusal("installs_closed", "installs_closed", _one(members)))
    for user in members:
        mark = ledger.accounts.get(account_key(corp_id, user))
        if mark is not None and mark.active and mark.test != test:
            return Admission(
                ledger,
                Refusal("test_and_released", _reason("test_and_released", limits), user),
            )
    corps = dict(ledger.corps)
    corp = corps.get(corp_id)
    # A corp is a test one while it has only test installs; once released, it counts.
    corp_test = test if corp is None or not corp.active else corp.test and test
    corps[corp_id] = Mark(True, corp_test, (corp is not None and corp.released) or not test)
    accounts = dict(ledger.accounts)
    for user in members:
        key = account_key(corp_id, user)
        mark = accounts.get(key)
        accounts[key] = Mark(True, test, (mark is not None and mark.released) or not test)
    return _within_limits(ledger, Ledger(corps, accounts), limits, members)


def _within_limits(
    ledger: Ledger, candidate: Ledger, limits: Limits, members: list[str]
) -> Admission:
    """``candidate`` admitted, unless a count it grows goes over its limit."""
    before, after = ledger.usage(limits.policy), candidate.usage(limits.policy)
    for name in LIMIT_NAMES:
        grew = after.of(name) > before.of(name)
        if grew and after.of(name) > limits.of(name):
            refused_user = members[0] if len(members) == 1 and name != "corps" else None
            return Admission(ledger, Refusal(name, _reason(name, limits), refused_user))
    return Admission(candidate)


def reclassify(ledger: Ledger, limits: Limits, *, corp_id: str, test: bool) -> Admission:
    """The corp's current installs moved to the test (or released) kind: a correction, so
    its active accounts count as if they had arrived as that kind, re-admitted against the
    other kind's limits (all or nothing). Accounts that already left keep their history."""
    prefix = f"{corp_id}/"
    accounts = dict(ledger.accounts)
    moved = [key for key, mark in accounts.items() if key.startswith(prefix) and mark.active]
    for key in moved:
        accounts[key] = Mark(True, test, not test)
    corp = ledger.corps.get(corp_id)
    history = any(mark.released for key, mark in accounts.items() if key.startswith(prefix))
    corps = dict(ledger.corps)
    corps[corp_id] = Mark(True if corp is None else corp.active, test, not test or history)
    members = [key[len(prefix) :] for key in moved]
    return _within_limits(ledger, Ledger(corps, accounts), limits, members)


def release_member(ledger: Ledger, corp_id: str, user_id: str) -> Ledger:
    """A member no longer has the app (unsubscribe): their account stops being active."""
    key = account_key(corp_id, user_id)
    mark = ledger.accounts.get(key)
    if mark is None or not mark.active:
        return ledger
    return replace(ledger, accounts={**ledger.accounts, key: replace(mark, active=False)})


def release_corp(ledger: Ledger, corp_id: str) -> Ledger:
    """The corp uninstalled (cancel_auth): it and every account of it stop being active."""
    prefix = f"{corp_id}/"
    corps = dict(ledger.corps)
    if corp_id in corps:
        corps[corp_id] = replace(corps[corp_id], active=False)
    accounts = {
        key: replace(mark, active=False) if key.startswith(prefix) else mark
        for key, mark in ledger.accounts.items()
    }
    return Ledger(corps, accounts)


@dataclass(frozen=True, slots=True)
class QuotaWarning:
    limit: LimitName
    used: int
    max: int
    level: Literal[80, 100]


def quota_warnings(before: Usage, after: Usage, limits: Limits) -> list[QuotaWarning]:
    """The 80 % and 100 % thresholds each limit crossed between ``before`` and ``after``."""
    warnings: list[QuotaWarning] = []
    for name in LIMIT_NAMES:
        cap = limits.of(name)
        if cap <= 0:
            continue
        for level in WARNING_LEVELS:
            threshold = math.ceil(cap * level / 100)
            if before.of(name) < threshold <= after.of(name):
                warnings.append(QuotaWarning(name, after.of(name), cap, level))
    return warnings


# lost: WeCom has the app installed in the corp but its permanent code never reached us.
InstallStatus = Literal["active", "revoked", "refused", "lost"]
LOST_REASON = (
    "WeCom consumed the auth code but its answer was lost (a crash in between): "
    "the member must install the app again"
)


@dataclass(frozen=True)
class AuthInfo:
    """What ``auth_info``/``auth_corp_info`` say about a grant."""

    corp_name: str | None
    agent_id: int | None
    auth_mode: int | None
    members: tuple[str, ...] = ()
    edition: dict[str, Any] | None = None


@dataclass(frozen=True)
class InstallationRecord:
    """What auth_service keeps per corp. The permanent code is clear here, sealed at rest."""

    corp_id: str
    status: InstallStatus
    changed_at: float  # occurred_at of the newest event applied: older ones are ignored
    installed_at: float
    updated_at: float
    corp_name: str | None = None
    agent_id: int | None = None
    auth_mode: int | None = None
    test: bool = False
    reason: str | None = None
    members: tuple[str, ...] = ()
    installer_user_id: str | None = None
    installer_open_userid: str | None = None
    edition: dict[str, Any] | None = None
    permanent_code: str | None = None

    def applies(self, occurred_at: float) -> bool:
        """Whether an event that happened at ``occurred_at`` is not older than this state.

        Compared in whole seconds: WeCom's TimeStamp has no finer grain, while a redirect is
        stamped by our clock, so an install and a cancel_auth in the same second must not make
        the cancel look older. Within one second the later arrival wins.
        """
        return not happened_before(occurred_at, self.changed_at)


def happened_before(occurred_at: float, reference: float) -> bool:
    """Strictly earlier at WeCom's one-second resolution."""
    return math.floor(occurred_at) < math.floor(reference)


def with_member(members: tuple[str, ...], user_id: str, *, present: bool) -> tuple[str, ...]:
    """The member list with ``user_id`` added or removed (sorted, no duplicates)."""
    updated = set(members)
    if present:
        updated.add(user_id)
    else:
        updated.discard(user_id)
    return tuple(sorted(updated))


def is_test_install(
    *,
    corp_id: str,
    state_test: bool,
    test_corp_ids: frozenset[str],
    user_id: str | None = None,
    test_accounts: frozenset[str] = frozenset(),
) -> bool:
    """WeCom marks no install as a test (protocol doc §13.4): it is one when it came through
    ``/install?test=1`` (the signed state, bound to this auth code, says so), its corp is a
    known test enterprise (``TEST_CORP_IDS``), or its installer is one of the developer's
    test accounts (``TEST_ACCOUNTS``, ``corp:user`` pairs, for installs by ``create_auth``)."""
    if state_test or corp_id in test_corp_ids:
        return True
    return user_id is not None and test_account(corp_id, user_id) in test_accounts


def test_account(corp_id: str, user_id: str) -> str:
    """A ``TEST_ACCOUNTS`` entry: ``corp:user``."""
    return f"{corp_id}:{user_id}"


# --- how each event changes an installation (the merge rules) ---------------------------------


@dataclass(frozen=True)
class Grant:
    """One exchanged install as the installation record needs it."""

    corp_id: str
    permanent_code: str
    info: AuthInfo
    installer_user_id: str | None
    installer_open_userid: str | None
    test: bool


def installed(
    current: InstallationRecord | None,
    grant: Grant,
    *,
    refusal: Refusal | None,
    admitted: list[str],
    occurred_at: float,
    now: float,
) -> InstallationRecord | None:
    """The record after an install (the corp's first, or another member's); None to keep it.

    Another member of an installed corp leaves the corp installed whatever this member's
    outcome, and members merge whatever order events came in. A refused first install is
    recorded ``refused`` with its permanent code kept (it cannot be fetched again).
    """
    info = grant.info
    if current is not None and current.status == "lost":
        current = None  # installed again, as a lost install's member must: start afresh
    if current is not None and current.status == "active":
        if refusal is not None:
            return None
        return replace(
            current,
            members=tuple(sorted(set(current.members) | set(admitted))),
            corp_name=info.corp_name or current.corp_name,
            agent_id=info.agent_id if info.agent_id is not None else current.agent_id,
            permanent_code=grant.permanent_code,
            changed_at=max(current.changed_at, occurred_at),
            updated_at=now,
        )
    if current is not None and not current.applies(occurred_at):
        return None  # revoked or refused after this install happened
    return InstallationRecord(
        corp_id=grant.corp_id,
        status="refused" if refusal is not None else "active",
        changed_at=occurred_at,
        installed_at=now,
        updated_at=now,
        corp_name=info.corp_name,
        agent_id=info.agent_id,
        auth_mode=info.auth_mode,
        test=grant.test,
        reason=None if refusal is None else refusal.reason,
        members=tuple(sorted(admitted)),
        installer_user_id=grant.installer_user_id,
        installer_open_userid=grant.installer_open_userid,
        edition=info.edition,
        permanent_code=grant.permanent_code,
    )


def rekeyed(
    current: InstallationRecord | None, permanent_code: str, *, occurred_at: float, now: float
) -> InstallationRecord | None:
    """reset_permanent_code: the corp's old code is void, the new one kept (§5.5)."""
    if current is None or not current.applies(occurred_at):
        return None
    return replace(current, permanent_code=permanent_code, changed_at=occurred_at, updated_at=now)


def regranted(
    current: InstallationRecord | None,
    info: AuthInfo,
    members: set[str],
    *,
    occurred_at: float,
    now: float,
) -> InstallationRecord | None:
    """change_auth: the grant as WeCom now reports it, with the members admitted."""
    if current is None or current.status != "active" or not current.applies(occurred_at):
        return None
    return replace(
        current,
        corp_name=info.corp_name or current.corp_name,
        agent_id=info.agent_id if info.agent_id is not None else current.agent_id,
        auth_mode=info.auth_mode,
        edition=info.edition,
        members=tuple(sorted(members)),
        changed_at=occurred_at,
        updated_at=now,
    )


def revoked(
    current: InstallationRecord | None, *, occurred_at: float, now: float
) -> InstallationRecord | None:
    """cancel_auth: a tombstone without the (void) code, so a late older event cannot
    resurrect the corp."""
    if current is None or not current.applies(occurred_at) or current.status == "revoked":
        return None
    return replace(
        current,
        status="revoked",
        reason="uninstalled",
        permanent_code=None,
        members=(),
        changed_at=occurred_at,
        updated_at=now,
    )


def member_changed(
    current: InstallationRecord | None,
    user_id: str,
    *,
    present: bool,
    occurred_at: float,
    now: float,
) -> InstallationRecord | None:
    """subscribe / unsubscribe: the member list with ``user_id`` added or removed."""
    if current is None or current.status != "active" or not current.applies(occurred_at):
        return None
    return replace(
        current,
        members=with_member(current.members, user_id, present=present),
        changed_at=occurred_at,
        updated_at=now,
    )


def released(ledger: Ledger, corp_id: str, users: list[str]) -> Admission:
    """The ledger with ``users`` of ``corp_id`` no longer active."""
    for user in users:
        ledger = release_member(ledger, corp_id, user)
    return Admission(ledger)


def released_corp(ledger: Ledger, corp_id: str) -> Admission:
    """The ledger with ``corp_id`` and all its accounts no longer active."""
    return Admission(release_corp(ledger, corp_id))


# --- the auth-code record -----------------------------------------------------------------

OutcomeStatus = Literal["installed", "refused", "expired", "ignored", "lost"]
# claimed → sent (about to call WeCom: from here a missing result may be a lost install) →
# exchanged (the sealed result stored) → done.
CodeStatus = Literal["claimed", "sent", "exchanged", "done"]


@dataclass(frozen=True)
class Outcome:
    """What became of an auth code."""

    status: OutcomeStatus
    corp_id: str | None = None
    corp_name: str | None = None
    limit: InstallLimit | None = None
    reason: str | None = None
    test: bool = False


@dataclass(frozen=True)
class CodeRecord:
    """The exchange of one auth code, keyed by its hash: claimed by one event, then exchanged
    (the sealed result kept), then done (its outcome kept for late duplicates)."""

    status: CodeStatus
    event_id: str
    claimed_at: float = 0.0
    state_test: bool = False
    app_state: str | None = None
    exchange: str | None = None  # the sealed exchange result (it holds the permanent code)
    outcome: Outcome | None = None

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": self.status, "event_id": self.event_id}
        if self.status != "done":
            doc["claimed_at"] = self.claimed_at
        if self.status in ("sent", "exchanged"):
            doc |= {
                "state_test": self.state_test,
                "app_state": self.app_state,
                "exchange": self.exchange,
            }
        if self.outcome is not None:
            doc |= {
                "outcome": self.outcome.status,
                "corp_id": self.outcome.corp_id,
                "corp_name": self.outcome.corp_name,
                "limit": self.outcome.limit,
                "reason": self.outcome.reason,
                "test": self.outcome.test,
            }
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CodeRecord:
        outcome = None
        if doc.get("outcome") is not None:
            outcome = Outcome(
                status=doc["outcome"],
                corp_id=doc.get("corp_id"),
                corp_name=doc.get("corp_name"),
                limit=doc.get("limit"),
                reason=doc.get("reason"),
                test=bool(doc.get("test")),
            )
        return cls(
            status=doc["status"],
            event_id=str(doc.get("event_id", "")),
            claimed_at=float(doc.get("claimed_at", 0.0)),
            state_test=bool(doc.get("state_test")),
            app_state=doc.get("app_state"),
            exchange=doc.get("exchange"),
            outcome=outcome,
        )
