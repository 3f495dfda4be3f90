"""A simulator served over real HTTP on loopback, with a clock the test controls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from shared.sandbox import SANDBOX_SUITE_ID, SANDBOX_SUITE_SECRET
from simulator.app import STATE_KEY, build_simulator_app
from simulator.settings import SimulatorSettings
from simulator.state import SimulatorState


@dataclass
class SimClock:
    """Seconds since the epoch, moved by the test."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class InFlight:
    """Counts the requests the simulator is still handling, so a test can wait until it is
    idle instead of sleeping (a handler cancelled because its client left counts as done).
    Only :func:`serve_simulator` installs the counting middleware."""

    started: int = 0
    running: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._bump(started=1, running=1)
        try:
            return await handler(request)
        finally:
            self._bump(running=-1)

    def _bump(self, *, started: int = 0, running: int) -> None:
        self.started += started
        self.running += running
        # Wake every waiter once, then start a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_idle(self, *, at_least: int = 0, timeout: float = 5.0) -> None:
        """Return once ``at_least`` requests have come in and none is still being handled."""

        async def idle() -> None:
            while self.started < at_least or self.running:
                await self._changed.wait()

        await asyncio.wait_for(idle(), timeout)


@dataclass
class SimulatorHarness:
    session: aiohttp.ClientSession
    server: TestServer
    state: SimulatorState
    in_flight: InFlight = field(default_factory=InFlight)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, Any]:
        """Call an API or control path; the HTTP status and the decoded JSON answer."""
        async with self.session.request(
            method, self.url(path), params=query or {}, json=body
        ) as response:
            return response.status, await response.json(content_type=None)

    async def push_ticket(self) -> str:
        status, answer = await self.call("POST", "/_sim/suite_ticket")
        assert status == 200
        ticket: str = answer["ticket"]
        return ticket

    async def suite_token(self) -> str:
        """A fresh suite_access_token minted with a freshly pushed ticket."""
        body = {
            "suite_id": SANDBOX_SUITE_ID,
            "suite_secret": SANDBOX_SUITE_SECRET,
            "suite_ticket": await self.push_ticket(),
        }
        _, answer = await self.call("POST", "/cgi-bin/service/get_suite_token", body=body)
        token: str = answer["suite_access_token"]
        return token

    async def install(self, corp_id: str = "wwcorp1", user_id: str = "alice", **fields: Any) -> Any:
        """``POST /_sim/install``; the decoded answer (asserting HTTP 200)."""
        body = {"corp_id": corp_id, "user_id": user_id, **fields}
        status, answer = await self.call("POST", "/_sim/install", body=body)
        assert status == 200, answer
        return answer

    async def corp_token(
        self, corp_id: str = "wwcorp1", user_id: str = "alice", **fields: Any
    ) -> tuple[str, int]:
        """Install the member, exchange the code with v1; the corp token and the agent id."""
        suite = await self.suite_token()
        code = (await self.install(corp_id, user_id, **fields))["auth_code"]
        answer = await self.service("get_permanent_code", suite, {"auth_code": code})
        agent_id: int = answer["auth_info"]["agent"][0]["agentid"]
        return answer["access_token"], agent_id

    async def corp_call(self, path: str, token: str, body: Any) -> Any:
        """POST a corp-token call (``/cgi-bin/message/...``); the decoded answer."""
        _, answer = await self.call("POST", path, query={"access_token": token}, body=body)
        return answer

    async def page(self, path: str, query: dict[str, str]) -> tuple[int, str | None, str]:
        """GET a browser page without following redirects: status, Location, body text."""
        async with self.session.get(
            self.url(path), params=query, allow_redirects=False
        ) as response:
            return response.status, response.headers.get("Location"), await response.text()

    async def service(self, path: str, token: str, body: dict[str, Any]) -> Any:
        """POST a ``/cgi-bin/service/`` call with a suite token; the decoded answer."""
        _, answer = await self.call(
            "POST", f"/cgi-bin/service/{path}", query={"suite_access_token": token}, body=body
        )
        return answer


def quiet_settings(**overrides: Any) -> SimulatorSettings:
    """Sandbox settings with no ticket pushed at start and no wait between retries."""
    values: dict[str, Any] = {"sim_ticket_on_start": False, "sim_callback_retry_delay_s": 0}
    values.update(overrides)
    return SimulatorSettings(**values)


@asynccontextmanager
async def serve_simulator(
    settings: SimulatorSettings | None = None, *, clock: SimClock | None = None
) -> AsyncIterator[SimulatorHarness]:
    """Serve a simulator on an ephemeral loopback port for the duration of the block."""
    app = build_simulator_app(settings or quiet_settings(), clock=clock or SimClock())
    in_flight = InFlight()
    app.middlewares.append(in_flight.middleware)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield SimulatorHarness(session, server, app[STATE_KEY], in_flight)
    finally:
        await server.close()
