"""A gateway served over real HTTP on loopback, with an in-process bus that captures events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.app import build_gateway_app
from gateway.settings import GatewaySettings
from shared.bus.abc import Bus, Delivery
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    EVENTS_EXCHANGE,
    Binding,
    QueueSpec,
    Topology,
)
from shared.wecom.crypto import CallbackCipher
from shared.wecom.sealing import SealedCallback, seal_callback

CAPTURE_QUEUE = "test.capture"
UNROUTED_QUEUE = "wecom.events.unrouted"
NOW = 1_700_000_000


@dataclass
class Clock:
    """Wall and monotonic time the test controls."""

    wall: float = NOW
    mono: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@dataclass
class GatewayHarness:
    session: aiohttp.ClientSession
    server: TestServer
    bus: Bus
    settings: GatewaySettings
    clock: Clock
    cipher: CallbackCipher = field(init=False)

    def __post_init__(self) -> None:
        self.cipher = CallbackCipher(self.settings.encoding_aes_key.get_secret_value())

    @property
    def token(self) -> str:
        return self.settings.callback_token.get_secret_value()

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def seal(
        self, plaintext: bytes, receive_id: str = "", *, timestamp: int | None = None
    ) -> SealedCallback:
        stamp = int(self.clock.wall) if timestamp is None else timestamp
        return seal_callback(self.cipher, self.token, plaintext, receive_id, timestamp=stamp)

    async def post(self, route: str, sealed: SealedCallback, **kwargs: Any) -> tuple[int, str]:
        async with self.session.post(
            self.url(f"/wecom/{route}"), params=sealed.query, data=sealed.body, **kwargs
        ) as response:
            return response.status, await response.text()

    async def get(self, route: str, query: Mapping[str, str]) -> tuple[int, str, str]:
        async with self.session.get(self.url(f"/wecom/{route}"), params=query) as response:
            return response.status, await response.text(), response.content_type

    def published(self) -> int:
        """Messages stored by the bus so far (captured plus unrouted)."""
        assert isinstance(self.bus, InProcessBus)
        return self.bus.queue_depth(CAPTURE_QUEUE) + self.bus.queue_depth(UNROUTED_QUEUE)

    async def events(self, expected: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Take exactly ``expected`` events off the capture queue."""
        got: list[dict[str, Any]] = []
        done = asyncio.Event()

        async def handler(delivery: Delivery) -> None:
            got.append(json.loads(delivery.message.body))
            if len(got) >= expected:
                done.set()

        consumer = await self.bus.consume(CAPTURE_QUEUE, handler, prefetch=1)
        try:
            if expected:
                await asyncio.wait_for(done.wait(), timeout)
        finally:
            await consumer.cancel(grace=1.0)
        return got


def capture_topology() -> Topology:
    capture = QueueSpec(CAPTURE_QUEUE, bindings=(Binding(EVENTS_EXCHANGE, "#"),), dead_letter=False)
    return BASE_TOPOLOGY.merged(Topology(exchanges=(), queues=(capture,)))


@asynccontextmanager
async def serve_gateway(
    settings: GatewaySettings | None = None,
    *,
    bus: Bus | None = None,
    clock: Clock | None = None,
    start_bus: bool = True,
) -> AsyncIterator[GatewayHarness]:
    """Serve a gateway on an ephemeral loopback port for the duration of the block."""
    settings = settings or GatewaySettings()
    clock = clock or Clock()
    bus = bus or InProcessBus(capture_topology())
    if start_bus:
        await bus.start()
    app: web.Application = build_gateway_app(
        settings, bus, wall_clock=lambda: clock.wall, monotonic=lambda: clock.mono
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield GatewayHarness(session, server, bus, settings, clock)
    finally:
        await server.close()
        await bus.close()
