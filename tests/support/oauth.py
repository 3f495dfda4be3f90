"""Member sign-in, composed in the test: the gateway with its sign-in routes, the in-process
bus, the real TokenService, the simulator and a fake ``rpc.auth`` server.

auth_service is not here, so the test plays its part: it installs the member at the
simulator, exchanges the auth code, publishes ``auth.granted`` (token_service then serves the
corp's tokens and tickets) and answers ``rpc.auth`` from :attr:`SignInRig.installations` and
:attr:`SignInRig.ended_sessions`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from yarl import URL

from gateway.app import DemoPage, MemberPages, WebClients, build_gateway_app
from gateway.settings import GatewaySettings
from gateway.web.oauth import SESSION_COOKIE, STATE_COOKIE
from shared.bus.abc import Message
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY, RPC_AUTH_QUEUE
from shared.lifecycle import Readiness
from shared.tokens import TokensClient
from simulator.settings import SANDBOX_DEFAULT_CORP, SANDBOX_DEFAULT_USER
from tests.support.gateway import Clock
from tests.support.process import free_port
from tests.support.simulator import SimulatorHarness, quiet_settings, serve_simulator
from tests.support.tokens import DATA_KEY, eventually, publish_grant, publish_ticket
from token_service.service import TOKEN_TOPOLOGY, TokenService
from token_service.settings import TokenSettings

DEFAULT_CORP = SANDBOX_DEFAULT_CORP
DEFAULT_USER = SANDBOX_DEFAULT_USER


@dataclass
class SignInRig:
    """Everything a sign-in test drives; ``browser`` is a cookie-keeping HTTP client."""

    sim: SimulatorHarness
    bus: InProcessBus
    tokens: TokensClient
    base: str
    clock: Clock
    browser: aiohttp.ClientSession
    installations: dict[str, dict[str, Any]] = field(default_factory=dict)
    auth_error: dict[str, str] | None = None
    # Session ids signed out of (the fake rpc.auth's end_session), and how often each op ran.
    ended_sessions: set[str] = field(default_factory=set)
    auth_ops: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base + path

    async def install(self, corp_id: str = DEFAULT_CORP, user_id: str = DEFAULT_USER) -> int:
        """Install the app for the member and grant it as auth_service would; the agent id."""
        answer = await self.sim.install(corp_id, user_id, via="redirect")
        suite = await eventually(lambda: self.tokens.get("suite"))
        exchanged = await self.sim.service(
            "get_permanent_code", suite.token, {"auth_code": answer["auth_code"]}
        )
        agent_id: int = exchanged["auth_info"]["agent"][0]["agentid"]
        await publish_grant(self.bus, corp_id, exchanged["permanent_code"], agent_id)
        await eventually(lambda: self.tokens.get("corp", corp_id=corp_id))
        self.installations[corp_id] = {
            "corp_id": corp_id,
            "agent_id": agent_id,
            "members": [user_id],
            "status": "active",
        }
        return agent_id

    async def calls(self) -> dict[str, int]:
        _, answer = await self.sim.call("GET", "/_sim/calls")
        counted: dict[str, int] = answer["calls"]
        return counted

    async def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
        """GET on the gateway without following redirects: status, headers, body."""
        async with self.browser.get(self.url(path), allow_redirects=False, **kwargs) as response:
            return response.status, dict(response.headers), await response.text()

    async def sign_in(self, next_url: str = "/demo/") -> str:
        """The whole loop through the simulator's authorize page; the final Location."""
        status, headers, _ = await self.get("/oauth/login", params={"next": next_url})
        assert status == 302, status
        async with self.browser.get(headers["Location"], allow_redirects=False) as page:
            assert page.status == 302, await page.text()
            callback = page.headers["Location"]
        async with self.browser.get(callback, allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
            return answer.headers["Location"]

    def cookie(self, name: str) -> str | None:
        for morsel in self.browser.cookie_jar:
            if morsel.key == name:
                return morsel.value
        return None

    def set_cookie(self, name: str, value: str) -> None:
        self.browser.cookie_jar.update_cookies({name: value}, response_url=URL(self.base))


async def _serve_auth(rig: SignInRig) -> None:
    async def answer(request: Message) -> bytes:
        if rig.auth_error is not None:
            return json.dumps({"error": rig.auth_error}).encode()
        body = json.loads(request.body)
        op = body.get("op")
        rig.auth_ops[op] = rig.auth_ops.get(op, 0) + 1
        if op == "installation":
            return json.dumps({"installation": rig.installations.get(body["corp_id"])}).encode()
        if op == "session":
            installation = rig.installations.get(body["corp_id"])
            ended = body["session_id"] in rig.ended_sessions
            return json.dumps({"ended": ended, "installation": installation}).encode()
        if op == "end_session":
            rig.ended_sessions.add(body["session_id"])
            return json.dumps({"ended": True}).encode()
        error = {"code": "invalid_request", "message": f"op {op!r} is not faked"}
        return json.dumps({"error": error}).encode()

    await rig.bus.serve(RPC_AUTH_QUEUE, answer)


@asynccontextmanager
async def sign_in_rig(
    data_dir: Path, *, ticket: bool = True, **gateway_values: Any
) -> AsyncIterator[SignInRig]:
    """The composition above on loopback; with ``ticket`` a suite_ticket is pushed first."""
    async with serve_simulator(quiet_settings(sim_oauth_auto_install="off")) as sim:
        sim_base = sim.url("").rstrip("/")
        bus = InProcessBus(BASE_TOPOLOGY.merged(TOKEN_TOPOLOGY))
        component = BusComponent(bus)
        readiness = Readiness()
        token_settings = TokenSettings(
            wecom_api_base=sim_base,
            data_dir=data_dir,
            data_key=SecretStr(base64.b64encode(DATA_KEY).decode()),
        )
        service = TokenService(token_settings, bus, component, readiness=readiness)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        values: dict[str, Any] = {
            "public_base_url": base,
            "wecom_api_base": sim_base,
            "wecom_oauth_base": sim_base,
            **gateway_values,
        }
        settings = GatewaySettings(**values)
        clock = Clock(wall=time.time())
        tokens = TokensClient(bus, timeout_s=5)
        app = build_gateway_app(
            settings,
            bus,
            web_parts=[MemberPages(DATA_KEY), DemoPage()],
            clients=WebClients(tokens=tokens),
            wall_clock=lambda: clock.wall,
        )
        server = TestServer(app, host="127.0.0.1", port=port)
        await component.start()
        await service.start()
        await server.start_server()
        # unsafe=True: aiohttp's jar drops cookies of IP hosts (127.0.0.1) otherwise.
        browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        rig = SignInRig(sim, bus, tokens, base, clock, browser)
        try:
            await _serve_auth(rig)
            if ticket:
                await publish_ticket(bus, await sim.push_ticket())
                await eventually(lambda: tokens.get("suite"))
            yield rig
        finally:
            await browser.close()
            await server.close()
            await service.stop()
            await component.stop()


__all__ = ["SESSION_COOKIE", "STATE_COOKIE", "SignInRig", "sign_in_rig"]
