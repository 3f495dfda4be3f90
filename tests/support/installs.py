"""The install stack in one process on a real RabbitMQ: the simulator pushing callbacks to a
gateway, and token_service + auth_service consuming them, sharing one store."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from auth_service.service import AUTH_TOPOLOGY, AuthService
from auth_service.settings import AuthSettings
from gateway.app import MemberPages, build_gateway_app
from gateway.settings import GatewaySettings
from shared.auth_client import AuthClient
from shared.bus.abc import Delivery, Message
from shared.bus.factory import BusComponent
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    EVENTS_EXCHANGE,
    RETRY_SUFFIX,
    Binding,
    QueueSpec,
    Topology,
)
from shared.contracts import EventEnvelope
from shared.sandbox import SANDBOX_SUITE_ID
from shared.tokens import TokensClient
from simulator.app import STATE_KEY, build_simulator_app
from tests.support import rabbitmq
from tests.support.gateway import Clock, GatewayHarness, serve_gateway
from tests.support.simulator import SimulatorHarness, quiet_settings
from tests.support.tokens import DATA_KEY, eventually
from token_service.service import TOKEN_TOPOLOGY, TokenService
from token_service.settings import TokenSettings

CAPTURE_QUEUE = "test.install_events"
IDLE_TIMEOUT = 30.0
IDLE_POLL_S = 0.2  # between rabbitmqctl calls, which take a second or two each anyway


@dataclass
class InstallStack:
    sim: SimulatorHarness
    gateway: GatewayHarness
    bus: RabbitMQBus
    bus_component: BusComponent
    auth: AuthClient
    tokens: TokensClient
    data_dir: Path
    auth_settings: AuthSettings
    token_settings: TokenSettings
    amqp_url: str
    services: list[Any] = field(default_factory=list)
    events: list[EventEnvelope] = field(default_factory=list)

    async def install(self, corp: str, user: str, **fields: Any) -> dict[str, Any]:
        answer: dict[str, Any] = await self.sim.install(corp, user, **fields)
        return answer

    async def publish(
        self, event_type: str, payload: dict[str, Any], *, corp_id: str | None = None,
        occurred_at: float | None = None, event_id: str | None = None,
    ) -> None:  # fmt: skip
        """Publish an event as the gateway would."""
        when = datetime.fromtimestamp(occurred_at or time.time(), UTC)
        envelope = EventEnvelope(
            id=event_id or f"test-{time.monotonic_ns()}",
            type=event_type,
            suite_id=SANDBOX_SUITE_ID,
            corp_id=corp_id,
            occurred_at=when,
            received_at=datetime.now(UTC),
            payload=payload,
        )
        message = Message(
            body=envelope.model_dump_json().encode(), message_id=envelope.id, type=event_type
        )
        await self.bus.publish(EVENTS_EXCHANGE, event_type, message)

    async def installation(self, corp: str, *, status: str | None = None) -> Any:
        """The corp's installation once it exists (and has ``status``, if given)."""

        async def check() -> Any:
            found = await self.auth.installation(corp)
            assert found is not None, f"{corp} not installed yet"
            if status is not None:
                assert found.status == status, found
            return found

        return await eventually(check, timeout=15)

    def of_type(self, event_type: str) -> list[EventEnvelope]:
        return [event for event in self.events if event.type == event_type]

    async def calls(self, path: str) -> int:
        _, answer = await self.sim.call("GET", "/_sim/calls")
        count: int = answer["calls"].get(path, 0)
        return count

    async def start_services(self) -> None:
        token = TokenService(self.token_settings, self.bus, self.bus_component)
        auth = AuthService(self.auth_settings, self.bus, self.bus_component)
        for service in (token, auth):
            await service.start()
        self.services = [token, auth]

    async def stop_services(self) -> None:
        for service in reversed(self.services):
            await service.stop()
        self.services = []


def _key() -> SecretStr:
    return SecretStr(base64.b64encode(DATA_KEY).decode())


@asynccontextmanager
async def install_stack(
    url: str, data_dir: Path, *, sim: dict[str, Any] | None = None, **auth: Any
) -> AsyncIterator[InstallStack]:
    """Everything started, a suite_ticket delivered and a suite token served."""
    gateway_bus = RabbitMQBus(url, BASE_TOPOLOGY, connection_name="installs-gateway")
    async with serve_gateway(
        GatewaySettings(), bus=gateway_bus, clock=Clock(wall=time.time())
    ) as gw:
        app = build_simulator_app(
            quiet_settings(
                sim_command_url=gw.url("/wecom/command"),
                sim_data_url=gw.url("/wecom/data"),
                **(sim or {}),
            ),
            clock=time.time,
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        capture = QueueSpec(
            CAPTURE_QUEUE, bindings=(Binding(EVENTS_EXCHANGE, "auth.#"),), dead_letter=False
        )
        topology = BASE_TOPOLOGY.merged(TOKEN_TOPOLOGY, AUTH_TOPOLOGY, Topology(queues=(capture,)))
        bus = RabbitMQBus(url, topology, connection_name="installs-services")
        component = BusComponent(bus)
        await component.start()
        await component.connected()
        base = str(server.make_url("")).rstrip("/")
        common: dict[str, Any] = {"wecom_api_base": base, "data_dir": data_dir, "data_key": _key()}
        session = aiohttp.ClientSession()
        stack = InstallStack(
            sim=SimulatorHarness(session, server, app[STATE_KEY]),
            gateway=gw,
            bus=bus,
            bus_component=component,
            auth=AuthClient(bus),
            tokens=TokensClient(bus, timeout_s=15),
            data_dir=data_dir,
            auth_settings=AuthSettings(**common, **auth),
            token_settings=TokenSettings(**common),
            amqp_url=url,
        )

        async def collect(delivery: Delivery) -> None:
            stack.events.append(EventEnvelope.model_validate_json(delivery.message.body))

        consumer = await bus.consume(CAPTURE_QUEUE, collect)
        try:
            await stack.start_services()
            await stack.sim.call("POST", "/_sim/suite_ticket")
            await eventually(lambda: stack.tokens.get("suite"), timeout=15)
            yield stack
        finally:
            await consumer.cancel()
            await stack.stop_services()
            await component.stop()
            await session.close()
            await server.close()


async def wait_idle(stack: InstallStack, timeout: float = IDLE_TIMEOUT) -> None:
    """Return once the stack has provably nothing left to do (for checks that something did
    NOT happen): no consumed queue and no retry queue of its vhost holds a ready or an
    unacknowledged message.

    Handlers are acked only after they return, and what they publish is confirmed before
    that, so an event still on its way always shows in some queue's counts.
    """
    vhost = rabbitmq.vhost_of(stack.amqp_url)
    deadline = time.monotonic() + timeout
    while True:
        counts = await asyncio.to_thread(rabbitmq.queue_counts, vhost)
        busy = {
            name: (count.ready, count.unacked)
            for name, count in counts.items()
            if (count.consumers or f"{RETRY_SUFFIX}." in name) and (count.ready or count.unacked)
        }
        if not busy:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"still busy after {timeout} s (ready, unacked): {busy}")
        await asyncio.sleep(IDLE_POLL_S)


def payload_of(envelope: EventEnvelope) -> dict[str, Any]:
    return json.loads(json.dumps(envelope.payload))  # type: ignore[no-any-return]


@dataclass
class InstallPages:
    session: aiohttp.ClientSession
    server: TestServer

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def get_bytes(self, path: str) -> tuple[int, str, bytes]:
        async with self.session.get(self.server.make_url(path)) as response:
            return response.status, response.content_type, await response.read()


@asynccontextmanager
async def install_pages(stack: InstallStack) -> AsyncIterator[InstallPages]:
    """A gateway serving the install pages on the stack's bus (the stack's own gateway only
    receives callbacks)."""
    settings = GatewaySettings(
        wecom_api_base=stack.sim.url("").rstrip("/"), public_base_url="https://app.example.test"
    )
    app = build_gateway_app(settings, stack.bus, web_parts=[MemberPages(bytes(range(32)))])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield InstallPages(session, server)
    finally:
        await server.close()
