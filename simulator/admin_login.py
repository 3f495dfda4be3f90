"""An admin opening the app's business-settings page (业务设置URL) from WeCom's admin console:
``POST /_sim/admin_login`` plays the admin's click and answers where WeCom would send the
browser, and ``service/get_login_info`` (provider token) tells the app who that admin is.

WeCom adds a single-use ``auth_code`` to the business-settings URL; the app exchanges it with
``get_login_info`` (``usertype`` 1 creator, 2 internal admin, 3 external admin, 4 graded
admin, 5 member; ``corp_info.corpid``; ``agent[].auth_type`` 1 manage / 0 use). A corp's
admins here are the ones ``get_admin_list`` answers: those set by ``POST /_sim/admins``, by
default the member who installed first. A used, expired or unknown code answers 40029, as
auth codes do (our choice).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from simulator.state import SimulatorState, WeComError

GET_LOGIN_INFO: Final = "/cgi-bin/service/get_login_info"
ADMIN_LOGIN: Final = "/_sim/admin_login"
INTERNAL_ADMIN: Final = 2  # usertype: 企业内部系统管理员
_ID: Final = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class LoginCode:
    corp_id: str
    user_id: str
    expires_at: float


class AdminLogin:
    """The admin console's click on the business-settings URL, and ``get_login_info``."""

    def __init__(self, state: SimulatorState, business_settings_url: str) -> None:
        self._state = state
        self._url = business_settings_url
        self._codes: dict[str, LoginCode] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ADMIN_LOGIN, self.admin_login),
            web.post(GET_LOGIN_INFO, self.get_login_info),
        ]

    def admins(self, corp_id: str) -> set[str]:
        """Who administers ``corp_id`` while it has the app: the admins ``get_admin_list``
        answers (``POST /_sim/admins``, by default the first installer)."""
        corp = self._state.installs.corps.get(corp_id)
        if corp is None or not corp.installed_members:
            return set()
        return {member.user_id for member, _ in corp.admin_members()}

    async def admin_login(self, request: web.Request) -> web.Response:
        """``{"corp_id","user_id"}`` → ``{"redirect_url"}``: the business-settings URL with a
        fresh single-use ``auth_code``; 403 for a user who is not that corp's admin."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, 'the body must be {"corp_id", "user_id"}')
        corp_id, user_id = body.get("corp_id"), body.get("user_id")
        if not (isinstance(corp_id, str) and _ID.match(corp_id)):
            return _error(400, "corp_id must be 1 to 64 letters, digits or _.@-")
        if not (isinstance(user_id, str) and _ID.match(user_id)):
            return _error(400, "user_id must be 1 to 64 letters, digits or _.@-")
        if user_id not in self.admins(corp_id):
            return _error(403, f"{user_id} is not an admin of {corp_id} (with the app installed)")
        code = secrets.token_urlsafe(48)
        ttl = self._state.lifetimes.auth_code
        self._codes[code] = LoginCode(corp_id, user_id, self._state.clock() + ttl)
        separator = "&" if "?" in self._url else "?"
        return web.json_response({"redirect_url": f"{self._url}{separator}auth_code={code}"})

    async def get_login_info(self, request: web.Request) -> web.Response:
        """Who the ``auth_code`` belongs to (provider_access_token required)."""
        self._state.count_call(GET_LOGIN_INFO)
        try:
            answer = await self._login_info(request)
        except WeComError as exc:
            return web.json_response({"errcode": exc.errcode, "errmsg": exc.errmsg})
        return web.json_response({"errcode": 0, "errmsg": "ok", **answer})

    async def _login_info(self, request: web.Request) -> dict[str, object]:
        token = self._state.provider_tokens.get(request.query.get("access_token", ""))
        if token is None:
            raise WeComError(40014, "invalid access_token")
        if self._state.clock() >= token.expires_at:
            raise WeComError(42001, "access_token expired")
        try:
            body = await request.json()
        except ValueError:
            raise WeComError(47001, "data format error") from None
        code = body.get("auth_code") if isinstance(body, dict) else None
        login = self._codes.pop(code, None) if isinstance(code, str) else None
        if login is None or self._state.clock() >= login.expires_at:
            raise WeComError(40029, "invalid code")
        corp = self._state.installs.corps[login.corp_id]
        member = corp.members.get(login.user_id)
        return {
            "usertype": INTERNAL_ADMIN,
            "user_info": {
                "userid": login.user_id,
                "open_userid": None if member is None else member.open_userid,
                "name": login.user_id,
                "avatar": "https://p.qlogo.cn/bizmail/sim/0",
            },
            "corp_info": {"corpid": login.corp_id},
            "agent": [{"agentid": corp.agent_id, "auth_type": 1}],
            "auth_info": {"department": []},
        }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": "refused", "message": message}}, status=status)
