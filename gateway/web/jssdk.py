"""``GET /jssdk/config?url=…``: signed configs for ``wx.config`` and ``wx.agentConfig`` for
the signed-in member's corp (protocol doc §10), while the session holds (``live_session``).
Tickets come from ``rpc.tokens``, which caches them per corp for their lifetime: a page view
never reaches WeCom's ticket endpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from gateway.web.oauth import current_session, live_session
from gateway.web.oauth_codecs import SessionCodec, js_sdk_signature, new_nonce_str, signing_url
from gateway.web.pages import NO_STORE
from shared.auth_client import AuthClient
from shared.errors import Forbidden
from shared.tokens import TokensClient, TokenUnavailable


class NotInstalled(Forbidden):
    code = "not_installed"
    reason = "the app is not installed in the member's corp"


class JsSdkHandlers:
    """The one ``/jssdk/`` route."""

    def __init__(
        self,
        sessions: SessionCodec,
        tokens: TokensClient,
        auth: AuthClient,
        *,
        trusted_domain: str,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._tokens = tokens
        self._auth = auth
        self._trusted_domain = trusted_domain
        self._wall_clock = wall_clock

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/jssdk/config", self.config)]

    async def config(self, request: web.Request) -> web.StreamResponse:
        """401 without a session (or after a sign-out or an uninstall), 400 for a URL off the
        trusted domain, 403 when the app is not installed in the corp, 503 when tickets or
        installation data are unavailable."""
        now = self._wall_clock()
        current_session(request, self._sessions, now)  # 401 before anything costs an RPC
        url = signing_url(request.query.get("url"), self._trusted_domain)
        # One rpc.auth call: the session not signed out of, and the corp's installation.
        session, status = await live_session(request, self._sessions, self._auth, now)
        corp_id = session.corp_id
        installation = status.installation
        if installation is None or installation.status != "active":
            raise NotInstalled
        if installation.agent_id is None:
            raise NotInstalled("the corp's installation has no agent id yet")
        try:
            jsapi = await self._tokens.get("jsapi", corp_id=corp_id)
            agent = await self._tokens.get("agent_jsapi", corp_id=corp_id)
        except TokenUnavailable as exc:
            if exc.error_code == "not_installed":
                raise NotInstalled from None
            raise
        timestamp = int(now)
        corp_nonce, agent_nonce = new_nonce_str(), new_nonce_str()
        body = {
            # Third-party apps sign wx.config with the *authorising corp's* id, not the
            # SuiteID (protocol doc §10.3: appId = corpid of the current enterprise), and
            # with that corp's jsapi_ticket.
            "config": {
                "appId": corp_id,
                "timestamp": timestamp,
                "nonceStr": corp_nonce,
                "signature": js_sdk_signature(jsapi.token, corp_nonce, timestamp, url),
            },
            # wx.agentConfig: the same corp, the app's agentid there, the agent ticket.
            "agentConfig": {
                "corpid": corp_id,
                "agentid": installation.agent_id,
                "timestamp": timestamp,
                "nonceStr": agent_nonce,
                "signature": js_sdk_signature(agent.token, agent_nonce, timestamp, url),
            },
        }
        return web.json_response(body, headers=NO_STORE)
