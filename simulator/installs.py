"""Installs of the app: corps, members, auth codes, permanent codes and corp tokens.

Plain Python like :mod:`simulator.state`, which owns one :class:`Installs` and lends it its
clock and its value generator. Protocol doc §8.5–§8.9 for the exchanges, §13.3 for the limits
of an individual developer's app, §5.2–§5.5 for when the callbacks carry which code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from simulator.limits import InstallLimits, refusal
from simulator.state_types import Clock, Issued, WeComError, same

NewValue = Callable[[int], str]
"""Draws a fresh random value of the given length (the state's seeded generator)."""

# Agent ids WeCom gives a newly authorised app look like 1000002, 1000003, …; one per corp.
FIRST_AGENT_ID = 1_000_002
AuthCodeKind = Literal["install", "reset"]
AVATAR_URL = "https://wework.qpic.cn/wwhead/sim/0"
"""Every member's avatar: WeCom gives a default one unless the member consented (path/91122)."""
AdminAuthType = Literal[0, 1]
"""get_admin_list's ``auth_type``: 0 may send messages, 1 may manage the app (path/90606)."""
MANAGE: AdminAuthType = 1


@dataclass(slots=True)
class Member:
    """A member of a corp as this app sees them (provider-scoped ids, protocol doc §1.3)."""

    user_id: str
    open_userid: str
    installed: bool = False
    test: bool = False


@dataclass(slots=True)
class Corp:
    """An enterprise, created the first time one of its members installs the app."""

    corp_id: str
    agent_id: int
    members: dict[str, Member] = field(default_factory=dict)
    permanent_code: str | None = None
    state: str | None = None
    installer: str | None = None
    # Set by POST /_sim/admins: (userid, auth_type) in order; None means the default.
    admins: list[tuple[str, AdminAuthType]] | None = None

    @property
    def corp_name(self) -> str:
        return f"Sim corp {self.corp_id}"

    @property
    def installed_members(self) -> list[Member]:
        return [m for m in self.members.values() if m.installed]

    def admin_members(self) -> list[tuple[Member, AdminAuthType]]:
        """The app's admins and their auth_type: as configured, else the first installer.

        WeCom lists only admins an administrator configured (none, under member
        authorisation, until one does); the first installer is the simulator's default so a
        fresh install has an admin to sign in as.
        """
        if self.admins is None:
            installer = self.members.get(self.installer) if self.installer else None
            return [] if installer is None else [(installer, MANAGE)]
        return [(self.members[user_id], auth_type) for user_id, auth_type in self.admins]


@dataclass(frozen=True, slots=True)
class AuthCode:
    """A temporary auth code (临时授权码): single use, valid 600 s (protocol doc §1.3)."""

    issued: Issued
    corp_id: str
    user_id: str | None
    state: str | None
    kind: AuthCodeKind


@dataclass
class Installs:
    """Every corp and member, and the codes and tokens issued for their installs."""

    clock: Clock
    new_value: NewValue
    limits: InstallLimits = field(default_factory=InstallLimits)
    auth_code_ttl: float = 600
    token_ttl: float = 7200
    corps: dict[str, Corp] = field(default_factory=dict, init=False)
    auth_codes: dict[str, AuthCode] = field(default_factory=dict, init=False)
    corp_tokens: dict[str, tuple[str, Issued]] = field(default_factory=dict, init=False)

    def reset(self) -> None:
        self.corps.clear()
        self.auth_codes.clear()
        self.corp_tokens.clear()

    def _issue(self, ttl: float, length: int = 64) -> Issued:
        return Issued(self.new_value(length), self.clock() + ttl)

    # -- installs (control API) -----------------------------------------------------------

    def corp(self, corp_id: str) -> Corp:
        """The corp, created on first sight with the next agent id."""
        corp = self.corps.get(corp_id)
        if corp is None:
            corp = Corp(corp_id, FIRST_AGENT_ID + len(self.corps))
            self.corps[corp_id] = corp
        return corp

    def install(self, corp_id: str, user_id: str, *, test: bool, state: str | None) -> str:
        """A member installs the app; its auth code (ask :meth:`refusal` first)."""
        corp = self.add_member(corp_id, user_id, test=test)
        corp.state = state
        return self._new_auth_code(corp_id, user_id, state, "install")

    def add_member(self, corp_id: str, user_id: str, *, test: bool) -> Corp:
        """Put the member in the app's visible range (no auth code); their corp."""
        corp = self.corp(corp_id)
        member = self._member(corp, user_id)
        member.installed, member.test = True, test
        corp.installer = corp.installer or user_id
        return corp

    def _member(self, corp: Corp, user_id: str) -> Member:
        """The corp's member, created (without the app) on first sight."""
        member = corp.members.get(user_id)
        if member is None:
            member = Member(user_id, f"wo{self.new_value(22)}")
            corp.members[user_id] = member
        return member

    def set_admins(
        self, corp_id: str, admins: list[tuple[str, AdminAuthType]]
    ) -> list[tuple[Member, AdminAuthType]]:
        """Make these members the app's admins (an admin need not have installed the app).

        LookupError when the corp has not installed the app.
        """
        corp = self.installed_corp(corp_id)
        for user_id, _ in admins:
            self._member(corp, user_id)
        corp.admins = list(admins)
        return corp.admin_members()

    def has_app(self, corp_id: str) -> bool:
        """Whether some member of the corp has the app installed now."""
        corp = self.corps.get(corp_id)
        return corp is not None and bool(corp.installed_members)

    def refusal(self, corp_id: str, user_id: str, *, test: bool) -> str | None:
        """Why WeCom would refuse this install under the individual-developer limits."""
        return refusal(self.limits, self.corps, corp_id, user_id, test=test)

    def installed_corp(self, corp_id: str) -> Corp:
        """A corp that currently has the app installed; LookupError otherwise."""
        corp = self.corps.get(corp_id)
        if corp is None or not corp.installed_members:
            raise LookupError(f"corp {corp_id!r} has not installed the app")
        return corp

    def uninstall(self, corp_id: str, user_id: str | None) -> bool:
        """Remove one member's install (or all); True when the whole grant is cancelled."""
        corp = self.installed_corp(corp_id)
        for member in corp.members.values():
            if user_id is None or member.user_id == user_id:
                member.installed = False
        if corp.installed_members:
            return False
        # Protocol doc §5.4: after cancel_auth the permanent code is void (40084) and so is
        # every corp token minted with it.
        corp.permanent_code = None
        corp.installer = None
        corp.admins = None  # a new grant starts with the default admin again
        for token, (owner, _) in list(self.corp_tokens.items()):
            if owner == corp_id:
                del self.corp_tokens[token]
        return True

    def reset_code(self, corp_id: str) -> str:
        """A new auth code whose exchange replaces the corp's permanent code (§5.5)."""
        self.installed_corp(corp_id)
        return self._new_auth_code(corp_id, None, None, "reset")

    def _new_auth_code(
        self, corp_id: str, user_id: str | None, state: str | None, kind: AuthCodeKind
    ) -> str:
        issued = self._issue(self.auth_code_ttl)
        self.auth_codes[issued.value] = AuthCode(issued, corp_id, user_id, state, kind)
        return issued.value

    # -- exchanges (WeCom API) ------------------------------------------------------------

    def exchange_auth_code(self, code: object) -> tuple[Corp, AuthCode]:
        """Use up an auth code; the corp now holding a permanent code, and the code.

        The protocol doc names no errcode for a bad auth code; the closest in WeCom's global
        table is 40029 ("invalid code", §12, described there for OAuth codes), so a used,
        expired or unknown auth code gets that. Our choice, documented in docs/simulator.md.
        """
        auth = self.auth_codes.pop(code, None) if isinstance(code, str) else None
        if auth is None or self.clock() >= auth.issued.expires_at:
            raise WeComError(40029, "invalid code")
        corp = self.corps[auth.corp_id]
        # §8.5: one permanent code per (corp, app); a member joining an installed corp gets
        # the same one, a reset or a re-install after cancel_auth gets a new one.
        if corp.permanent_code is None or auth.kind == "reset":
            corp.permanent_code = self.new_value(64)
        return corp, auth

    def authorised_corp(self, corp_id: object, permanent_code: object) -> Corp:
        """The corp a (corpid, permanent_code) pair names, or 40084."""
        corp = self.corps.get(corp_id) if isinstance(corp_id, str) else None
        if corp is None or not same(permanent_code, corp.permanent_code):
            raise WeComError(40084, "invalid permanent_code")
        return corp

    def issue_corp_token(self, corp: Corp) -> Issued:
        """A corp access_token for an authorised corp (§8.8)."""
        token = self._issue(self.token_ttl)
        self.corp_tokens[token.value] = (corp.corp_id, token)
        return token

    def check_corp_token(self, token: str) -> Corp:
        """The corp of a corp access_token; 40014 when unknown, 42001 when expired.

        A suite or provider token sent as ``access_token`` is unknown here, hence 40014, the
        code the protocol doc gives for the wrong token kind (§1.2, §12).
        """
        entry = self.corp_tokens.get(token)
        if entry is None:
            raise WeComError(40014, "invalid access_token")
        corp_id, issued = entry
        if self.clock() >= issued.expires_at:
            raise WeComError(42001, "access_token expired")
        return self.corps[corp_id]

    def issue_js_ticket(self) -> Issued:
        """A jsapi_ticket or agent_config ticket (7200 s, protocol doc §10.1)."""
        return self._issue(self.token_ttl)
