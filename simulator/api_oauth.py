"""WeCom's OAuth user calls for third-party apps: ``getuserinfo3rd``, ``getuserdetail3rd``.

Protocol doc §9.2/§9.3. Both live under ``/cgi-bin/service/auth/`` today and under
``/cgi-bin/service/`` in older docs, where the suite token travels as ``access_token``; the
simulator serves both paths and takes either parameter name there. It answers lower-case keys
on both: the key casing of the current path is an open question (§15.8) and newer docs and
SDKs read lower-case, so clients should parse case-insensitively.
"""

from __future__ import annotations

from simulator.calls import ApiCall, Endpoint, JsonObject
from simulator.installs import AVATAR_URL, Member
from simulator.oauth import USER_TICKET_TTL_S
from simulator.state import SimulatorState, WeComError
from simulator.state_types import expires_in

SERVICE = "/cgi-bin/service"


class OAuthApi:
    """The sign-in operations over :class:`SimulatorState`."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def endpoints(self) -> list[Endpoint]:
        info, detail = self.get_user_info, self.get_user_detail
        return [
            Endpoint(f"{SERVICE}/auth/getuserinfo3rd", "GET", "suite_access_token", info),
            Endpoint(f"{SERVICE}/auth/getuserdetail3rd", "POST", "suite_access_token", detail),
            # Legacy paths: the token may be named access_token, so the operation checks it.
            Endpoint(f"{SERVICE}/getuserinfo3rd", "GET", None, info),
            Endpoint(f"{SERVICE}/getuserdetail3rd", "POST", None, detail),
        ]

    def _suite(self, call: ApiCall) -> None:
        token = call.query.get("suite_access_token") or call.query.get("access_token")
        if not token:
            raise WeComError(41001, "suite_access_token missing")
        self._state.check_suite_token(token)

    def _member(self, corp_id: str, user_id: str) -> Member:
        # §9.3: the member must still be in the visible range, i.e. have the app installed.
        corp = self._state.installs.corps.get(corp_id)
        member = None if corp is None else corp.members.get(user_id)
        if member is None or not member.installed:
            raise WeComError(50002, "user not in app visible range")
        return member

    async def get_user_info(self, call: ApiCall) -> JsonObject:
        """§9.2: a single-use code → the member's corpid, userid and open_userid."""
        self._suite(call)
        sign_in, ticket = self._state.oauth.use_code(call.query.get("code"))
        member = self._member(sign_in.corp_id, sign_in.user_id)
        answer: JsonObject = {
            "corpid": sign_in.corp_id,
            "userid": member.user_id,
            "open_userid": member.open_userid,
        }
        if ticket is not None:
            # Only snsapi_privateinfo yields a user_ticket, with its lifetime.
            answer["user_ticket"] = ticket.value
            answer["expires_in"] = expires_in(USER_TICKET_TTL_S)  # issued just now
        return answer

    async def get_user_detail(self, call: ApiCall) -> JsonObject:
        """§9.3: a user_ticket → the member's details (plausible constants here)."""
        self._suite(call)
        sign_in = self._state.oauth.use_ticket(call.body.get("user_ticket"))
        member = self._member(sign_in.corp_id, sign_in.user_id)
        return {
            "corpid": sign_in.corp_id,
            "userid": member.user_id,
            "name": member.user_id,
            "gender": "0",
            "avatar": AVATAR_URL,
            "qr_code": AVATAR_URL,
        }
