"""WeCom's install API: session info, permanent codes, auth info, corp tokens, admins.

Protocol doc §8.3 and §8.5–§8.9 for the calls; the shapes follow the examples on WeCom's doc
pages, recorded in ``tests/fixtures/wecom_examples/``. The corp-token calls of §10.1 are here
too because they are what a corp token is for. Values WeCom would fill from the real corp
(logos, industry, scale) are plausible constants.
"""

from __future__ import annotations

from typing import Literal

from simulator.calls import ApiCall, Endpoint, JsonObject, TokenParam
from simulator.installs import AVATAR_URL, AuthCode, Corp
from simulator.state import SimulatorState, WeComError
from simulator.state_types import expires_in

SERVICE = "/cgi-bin/service"
LOGO_URL = "https://p.qlogo.cn/bizmail/sim/0"
CorpInfoKind = Literal["v1", "v2", "slim"]


def corp_info(corp: Corp, kind: CorpInfoKind) -> JsonObject:
    """``auth_corp_info`` as each call's doc page shows it.

    ``slim``: v2 of get_permanent_code, corpid and corp_name only (path/100776). ``v1``: v1 of
    get_permanent_code and get_auth_info (path/90603). ``v2``: v2 of get_auth_info, which has no
    ``corp_wxqrcode`` and adds ``corp_ex_name`` (path/100795). ``verified_end_time`` is left out:
    a simulated corp is ``unverified``, and the field is the end of a verification.
    """
    info: JsonObject = {"corpid": corp.corp_id, "corp_name": corp.corp_name}
    if kind == "slim":
        return info
    info.update(
        corp_type="unverified",
        corp_square_logo_url=LOGO_URL,
        corp_user_max=200,
        corp_full_name=corp.corp_name,
        subject_type=1,
    )
    if kind == "v1":
        info["corp_wxqrcode"] = LOGO_URL
    info.update(
        corp_scale="1-50人",
        corp_industry="IT服务",
        corp_sub_industry="计算机软件/硬件/信息服务",
    )
    if kind == "v2":
        info["corp_ex_name"] = {"name_list": corp.corp_name}
    return info


def auth_info(corp: Corp) -> JsonObject:
    """``auth_info``: one agent, member authorisation, single-basic-info privilege (§8.5).

    No ``appid`` (legacy multi-app suites only) and no ``shared_from`` (apps shared through
    企业互联/上下游), which the doc pages show for those cases.
    """
    members = [m.user_id for m in corp.installed_members]
    privilege = {
        "level": 4,
        "allow_party": [],
        "allow_user": members,
        "allow_tag": [],
        "extra_party": [],
        "extra_user": [],
        "extra_tag": [],
    }
    agent = {
        "agentid": corp.agent_id,
        "name": "Sim app",
        "round_logo_url": LOGO_URL,
        "square_logo_url": LOGO_URL,
        "auth_mode": 1,
        "is_customized_app": False,
        "auth_from_thirdapp": False,
        "privilege": privilege,
    }
    return {"agent": [agent]}


def user_info(corp: Corp, auth: AuthCode) -> JsonObject | None:
    """``auth_user_info``: the member whose install produced the code, None when nobody did.

    ``name`` is the userid: WeCom stopped returning real names to third-party apps (path/91122)
    and its pages say every field here may be empty. A reset code names nobody, so its
    exchange names the corp's first installer, if any.
    """
    user_id = auth.user_id or corp.installer
    member = corp.members.get(user_id) if user_id is not None else None
    if member is None:
        return None
    return {
        "userid": member.user_id,
        "open_userid": member.open_userid,
        "name": member.user_id,
        "avatar": AVATAR_URL,
    }


class InstallApi:
    """The install-related ``/cgi-bin/`` operations over :class:`SimulatorState`."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._installs = state.installs

    def endpoints(self) -> list[Endpoint]:
        suite: TokenParam = "suite_access_token"
        return [
            Endpoint(f"{SERVICE}/set_session_info", "POST", suite, self.set_session_info),
            Endpoint(f"{SERVICE}/get_permanent_code", "POST", suite, self.permanent_code_v1),
            Endpoint(f"{SERVICE}/v2/get_permanent_code", "POST", suite, self.permanent_code_v2),
            Endpoint(f"{SERVICE}/get_auth_info", "POST", suite, self.auth_info_v1),
            Endpoint(f"{SERVICE}/v2/get_auth_info", "POST", suite, self.auth_info_v2),
            Endpoint(
                f"{SERVICE}/get_corp_token", "POST", suite, self.get_corp_token, ok_errmsg=None
            ),
            Endpoint(f"{SERVICE}/get_admin_list", "POST", suite, self.get_admin_list),
            Endpoint("/cgi-bin/get_jsapi_ticket", "GET", "access_token", self.get_jsapi_ticket),
            Endpoint("/cgi-bin/ticket/get", "GET", "access_token", self.get_agent_ticket),
        ]

    def _suite(self, call: ApiCall) -> None:
        self._state.check_suite_token(call.query["suite_access_token"])

    async def set_session_info(self, call: ApiCall) -> JsonObject:
        """§8.3: mark one install session formal (auth_type 0, default) or test (1)."""
        self._suite(call)
        session = call.body.get("session_info") or {}
        auth_type = session.get("auth_type", 0) if isinstance(session, dict) else None
        if auth_type not in (0, 1) or isinstance(auth_type, bool):
            raise WeComError(40058, "invalid parameter session_info.auth_type")
        appid = session.get("appid") if isinstance(session, dict) else None
        if appid:
            # §12: 40086 for a set_session_info appid; individual apps have none.
            raise WeComError(40086, "invalid third-app id")
        self._state.set_session_info(call.body.get("pre_auth_code"), auth_type)
        return {}

    async def permanent_code_v1(self, call: ApiCall) -> JsonObject:
        """§8.5: the auth code for the permanent code, a corp token and the full auth info."""
        self._suite(call)
        corp, auth = self._installs.exchange_auth_code(call.body.get("auth_code"))
        token = self._installs.issue_corp_token(corp)
        answer: JsonObject = {
            "access_token": token.value,
            "expires_in": expires_in(self._state.lifetimes.token),
            "permanent_code": corp.permanent_code,
            "state": auth.state or "",
            "auth_corp_info": corp_info(corp, "v1"),
            "auth_info": auth_info(corp),
        }
        return _with_user(answer, corp, auth)

    async def permanent_code_v2(self, call: ApiCall) -> JsonObject:
        """§8.6: the slim answer, with no access_token and no auth_info."""
        self._suite(call)
        corp, auth = self._installs.exchange_auth_code(call.body.get("auth_code"))
        answer: JsonObject = {
            "permanent_code": corp.permanent_code,
            "state": auth.state or "",
            "auth_corp_info": corp_info(corp, "slim"),
        }
        return _with_user(answer, corp, auth)

    def _authorised(self, call: ApiCall) -> Corp:
        self._suite(call)
        body = call.body
        return self._installs.authorised_corp(body.get("auth_corpid"), body.get("permanent_code"))

    async def auth_info_v1(self, call: ApiCall) -> JsonObject:
        """§8.7: the grant as it stands (path/90604's shape)."""
        corp = self._authorised(call)
        return {"auth_corp_info": corp_info(corp, "v1"), "auth_info": auth_info(corp)}

    async def auth_info_v2(self, call: ApiCall) -> JsonObject:
        """§8.6: the grant as v2 shows it: v2's ``auth_corp_info`` (path/100795)."""
        corp = self._authorised(call)
        return {"auth_corp_info": corp_info(corp, "v2"), "auth_info": auth_info(corp)}

    async def get_corp_token(self, call: ApiCall) -> JsonObject:
        """§8.8: a corp access_token; a wrong or void permanent code is 40084."""
        corp = self._authorised(call)
        token = self._installs.issue_corp_token(corp)
        return {"access_token": token.value, "expires_in": expires_in(self._state.lifetimes.token)}

    async def get_admin_list(self, call: ApiCall) -> JsonObject:
        """§8.9: the app's admins: those set by ``POST /_sim/admins``, else the first installer."""
        self._suite(call)
        corp = self._installs.corps.get(str(call.body.get("auth_corpid")))
        if corp is None or not corp.installed_members:
            raise WeComError(48004, "authorization relation invalid")
        if call.body.get("agentid") != corp.agent_id:
            raise WeComError(40056, "invalid agentid")
        return {"admin": admin_list(corp)}

    async def get_jsapi_ticket(self, call: ApiCall) -> JsonObject:
        """§10.1: the corp jsapi_ticket for ``wx.config``."""
        self._installs.check_corp_token(call.query["access_token"])
        ticket = self._installs.issue_js_ticket()
        return {"ticket": ticket.value, "expires_in": expires_in(self._state.lifetimes.token)}

    async def get_agent_ticket(self, call: ApiCall) -> JsonObject:
        """§10.1: ``ticket/get?type=agent_config``, the ticket for ``wx.agentConfig``."""
        self._installs.check_corp_token(call.query["access_token"])
        if call.query.get("type") != "agent_config":
            raise WeComError(40058, "invalid parameter type")
        ticket = self._installs.issue_js_ticket()
        return {"ticket": ticket.value, "expires_in": expires_in(self._state.lifetimes.token)}


def _with_user(answer: JsonObject, corp: Corp, auth: AuthCode) -> JsonObject:
    # The doc pages: auth_user_info "可能不返回" — absent, not empty, when nobody is known.
    user = user_info(corp, auth)
    if user is not None:
        answer["auth_user_info"] = user
    return answer


def admin_list(corp: Corp) -> list[JsonObject]:
    """``admin`` of get_admin_list (path/90606): userid, open_userid and auth_type each."""
    return [
        {"userid": member.user_id, "open_userid": member.open_userid, "auth_type": auth_type}
        for member, auth_type in corp.admin_members()
    ]
