"""``/_sim/install``, ``/_sim/uninstall``, ``/_sim/change_auth``, ``/_sim/reset_permanent_code``
and ``/_sim/admins``.

A member installs or removes the app and WeCom tells the app by an instruction callback
(protocol doc §5.2–§5.5), or, for an install from the app's own website, by the redirect of
§8.4 with no callback. ``/_sim/admins`` sets whom ``get_admin_list`` answers (§8.9).
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from yarl import URL

from shared.errors import NotFound
from simulator.api_installs import admin_list
from simulator.control import read_model
from simulator.installs import AdminAuthType, Corp
from simulator.joins import LaterMembers, announce_leave, install_and_announce
from simulator.pusher import CallbackPusher
from simulator.state import SimulatorState
from simulator.state_types import expires_in

# Ids are opaque to the app (protocol doc §1.3); these bounds keep them printable and short.
ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
UserId = Annotated[str, Field(pattern=ID_PATTERN)]


class InstallSpec(BaseModel):
    """Body of ``POST /_sim/install``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corp_id: str = Field(pattern=ID_PATTERN)
    user_id: str = Field(pattern=ID_PATTERN)
    test: bool = False
    via: Literal["callback", "redirect"] = "callback"
    # §8.4: state is [a-zA-Z0-9], at most 128 bytes.
    state: str | None = Field(None, pattern=r"^[a-zA-Z0-9]{0,128}$")


class CorpSpec(BaseModel):
    """Body of the uninstall, change_auth and reset_permanent_code calls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corp_id: str = Field(pattern=ID_PATTERN)
    user_id: str | None = Field(None, pattern=ID_PATTERN)


class AdminSpec(BaseModel):
    """One admin of ``POST /_sim/admins`` given as an object; a bare userid means auth_type 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: UserId
    # path/90606: 0 may send messages, 1 may manage the app.
    auth_type: AdminAuthType = 1


class AdminsSpec(BaseModel):
    """Body of ``POST /_sim/admins``: the corp and its admins, in the order get_admin_list
    answers them (an empty list: no admin, as WeCom under member authorisation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corp_id: str = Field(pattern=ID_PATTERN)
    # At most the 100 users an individual developer's app may reach (protocol doc §13.3).
    users: list[AdminSpec | UserId] = Field(max_length=100)

    @field_validator("users")
    @classmethod
    def _distinct(cls, users: list[AdminSpec | str]) -> list[AdminSpec | str]:
        ids = [_admin(user)[0] for user in users]
        if len(set(ids)) != len(ids):
            raise ValueError("a user is listed twice")
        return users

    def admins(self) -> list[tuple[str, AdminAuthType]]:
        return [_admin(user) for user in self.users]


def _admin(user: AdminSpec | str) -> tuple[str, AdminAuthType]:
    return (user, 1) if isinstance(user, str) else (user.user_id, user.auth_type)


class InstallControl:
    """Handlers of the install lifecycle in ``/_sim/``."""

    def __init__(
        self,
        state: SimulatorState,
        pusher: CallbackPusher,
        redirect_url: str,
        later_members: LaterMembers = "create_auth",
    ) -> None:
        self._state = state
        self._later_members = later_members
        self._installs = state.installs
        self._pusher = pusher
        self._redirect_url = URL(redirect_url)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_sim/install", self.install),
            web.post("/_sim/uninstall", self.uninstall),
            web.post("/_sim/change_auth", self.change_auth),
            web.post("/_sim/reset_permanent_code", self.reset_permanent_code),
            web.post("/_sim/admins", self.admins),
        ]

    def _installed(self, corp_id: str) -> Corp:
        try:
            return self._installs.installed_corp(corp_id)
        except LookupError as exc:
            raise NotFound(str(exc)) from None

    async def install(self, request: web.Request) -> web.Response:
        """A member installs the app: limits, then create_auth, subscribe or a redirect."""
        spec = await read_model(request, InstallSpec, "install")
        answer: dict[str, object] = {
            "auth_code": None,
            "redirect_url": None,
            "pushed": None,
            "delivered": False,
        }
        refused = self._installs.refusal(spec.corp_id, spec.user_id, test=spec.test)
        if refused is not None:
            return web.json_response({**answer, "refused": refused})
        answer["refused"] = None
        if spec.via == "redirect":
            # §8.4: the browser comes back with auth_code, expires_in and state; no callback.
            code = self._installs.install(
                spec.corp_id, spec.user_id, test=spec.test, state=spec.state
            )
            query = {
                "auth_code": code,
                "expires_in": str(expires_in(self._state.lifetimes.auth_code)),
            }
            query["state"] = spec.state or ""
            answer.update(auth_code=code, redirect_url=str(self._redirect_url.update_query(query)))
            return web.json_response(answer)
        joined = await install_and_announce(
            self._state,
            self._pusher,
            self._later_members,
            spec.corp_id,
            spec.user_id,
            test=spec.test,
            install_state=spec.state,
        )
        answer.update(auth_code=joined.auth_code, pushed=joined.pushed, delivered=joined.delivered)
        return web.json_response(answer)

    async def uninstall(self, request: web.Request) -> web.Response:
        """A member (or, without user_id, every member) removes the app.

        When nobody is left the grant is cancelled (cancel_auth, permanent code void);
        otherwise the visible range shrank, which WeCom reports as change_auth (§5.3), or with
        ``SIM_LATER_MEMBERS=subscribe`` as the leaving member's ``unsubscribe`` event.
        """
        spec = await read_model(request, CorpSpec, "uninstall")
        self._installed(spec.corp_id)
        cancelled = self._installs.uninstall(spec.corp_id, spec.user_id)
        pushed, delivered = await announce_leave(
            self._state,
            self._pusher,
            self._later_members,
            spec.corp_id,
            spec.user_id,
            cancelled=cancelled,
        )
        return web.json_response({"cancelled": cancelled, "pushed": pushed, "delivered": delivered})

    async def change_auth(self, request: web.Request) -> web.Response:
        """The grant changed: push change_auth (§5.3)."""
        spec = await read_model(request, CorpSpec, "change_auth")
        corp = self._installed(spec.corp_id)
        delivered = await self._pusher.push_instruction(
            "change_auth", ("AuthCorpId", corp.corp_id), ("State", corp.state)
        )
        return web.json_response({"delivered": delivered})

    async def reset_permanent_code(self, request: web.Request) -> web.Response:
        """Push reset_permanent_code with a new auth code; no AuthCorpId (§5.5)."""
        spec = await read_model(request, CorpSpec, "reset_permanent_code")
        self._installed(spec.corp_id)
        code = self._installs.reset_code(spec.corp_id)
        delivered = await self._pusher.push_instruction("reset_permanent_code", ("AuthCode", code))
        return web.json_response({"auth_code": code, "delivered": delivered})

    async def admins(self, request: web.Request) -> web.Response:
        """Set the corp's app admins; get_admin_list answers them from now on (§8.9).

        An admin need not have installed the app (under member authorisation an
        administrator configures them); one never seen before becomes a member of the corp.
        The setting lasts until the grant is cancelled, when the default (the first
        installer) comes back with the next install.
        """
        spec = await read_model(request, AdminsSpec, "admins")
        try:
            self._installs.set_admins(spec.corp_id, spec.admins())
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        corp = self._installs.corps[spec.corp_id]
        return web.json_response({"corp_id": corp.corp_id, "admin": admin_list(corp)})
