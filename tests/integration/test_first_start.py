"""A first deploy on a fresh broker: the gateway alone accepts callbacks, and the services
started after it still apply them (the gateway declares the product's consumer queues)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aio_pika
import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from shared.auth_client import AuthClient
from shared.bus.product_topology import AUTH_EVENTS_QUEUE, NOTIFY_QUEUE, TOKEN_EVENTS_QUEUE
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY, RPC_TOPOLOGY, UNROUTED_QUEUE
from shared.tokens import TokensClient
from simulator.app import STATE_KEY, build_simulator_app
from tests.support import rabbitmq
from tests.support.process import free_port, http_get, standalone_env, wait_ready
from tests.support.simulator import SimulatorHarness, quiet_settings
from tests.support.tokens import DATA_KEY, eventually

pytestmark = pytest.mark.integration

CORP = "wwfirststart"
READY_TIMEOUT_S = 30.0


@pytest.fixture
def vhost_url(amqp_url: str) -> Iterator[str]:
    """A vhost nobody declared anything on: the broker of a first deploy."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    with rabbitmq.fresh_vhost("wecom-first") as url:
        yield url


async def depths(amqp_url: str, *queues: str) -> list[int]:
    """The ready messages in each queue, by a passive declare (it must exist)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        found = []
        for name in queues:
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count
            found.append(count if count is not None else -1)
        return found
    finally:
        await connection.close()


@contextmanager
def service(
    module: str, env: dict[str, str], log_dir: Path, *, port: int | None = None
) -> Iterator[str]:
    """``python -m <module>`` until the block ends; its base URL once /readyz answers 200."""
    port = port or free_port()
    log_path = log_dir / f"{module}.log"
    with log_path.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 -- fixed arguments, no shell
            [sys.executable, "-m", module],
            env={**env, "HTTP_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base, module, log=log_path.read_text)
        yield base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def sandbox_env(amqp_url: str, api_base: str, data_dir: Path) -> dict[str, str]:
    """A standalone service's environment in sandbox mode, asked for explicitly."""
    return standalone_env(
        amqp_url,
        data_dir,
        drop=("TOKEN_", "SIM_"),
        WECOM_API_BASE=api_base,
        DATA_KEY=base64.b64encode(DATA_KEY).decode(),
    )


@asynccontextmanager
async def simulator(command_url: str) -> AsyncIterator[SimulatorHarness]:
    """A simulator on real time pushing its instruction callbacks to ``command_url``."""
    app = build_simulator_app(quiet_settings(sim_command_url=command_url), clock=time.time)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield SimulatorHarness(session, server, app[STATE_KEY])
    finally:
        await server.close()


async def test_events_accepted_before_the_services_ever_ran_are_applied(
    vhost_url: str, tmp_path: Path
) -> None:
    """Gateway alone on a fresh vhost accepts a suite_ticket and a create_auth; token_service
    and auth_service started afterwards apply both (a suite token, an active installation)."""
    port = free_port()
    async with simulator(f"http://127.0.0.1:{port}/wecom/command") as sim:
        env = sandbox_env(vhost_url, sim.url("").rstrip("/"), tmp_path)
        with service("gateway", env, tmp_path, port=port):
            status, ticket = await sim.call("POST", "/_sim/suite_ticket")
            assert (status, ticket["delivered"]) == (200, True)
            installed = await sim.install(CORP, "alice")
            assert installed["delivered"] is True
            # Both wait in their consumers' queues; nothing fell through to unrouted.
            queues = (TOKEN_EVENTS_QUEUE, AUTH_EVENTS_QUEUE, NOTIFY_QUEUE, UNROUTED_QUEUE)
            assert await depths(vhost_url, *queues) == [1, 1, 0, 0]
            await _start_services_and_check(vhost_url, env, tmp_path)


async def _start_services_and_check(vhost_url: str, env: dict[str, str], logs: Path) -> None:
    client = RabbitMQBus(vhost_url, BASE_TOPOLOGY.merged(RPC_TOPOLOGY), connection_name="first")
    await client.start()
    try:
        with (
            service("token_service", env, logs),
            service("auth_service", env, logs),
        ):
            tokens = TokensClient(client, timeout_s=10)
            suite = await eventually(lambda: tokens.get("suite"), timeout=30)
            assert suite.token
            auth = AuthClient(client, timeout_s=10)

            async def active() -> str:
                installation = await auth.installation(CORP)
                assert installation is not None, "not applied yet"
                assert installation.status == "active", installation.status
                return installation.corp_id

            assert await eventually(active, timeout=30) == CORP
    finally:
        await client.close()


def test_a_lone_sandbox_gateway_says_so_on_readyz_and_metrics(
    vhost_url: str, tmp_path: Path
) -> None:
    """WECOM_SANDBOX=1: /readyz shows sandbox_mode, /metrics wecom_sandbox_mode 1, and the log
    carries a warning."""
    env = sandbox_env(vhost_url, "http://127.0.0.1:9", tmp_path)
    with service("gateway", env, tmp_path) as gateway:
        status, body = http_get(gateway + "/readyz")
        assert status == 200
        assert json.loads(body)["sandbox_mode"] is True
        _, metrics = http_get(gateway + "/metrics")
        assert "wecom_sandbox_mode 1.0" in metrics.decode()
    lines = [json.loads(line) for line in (tmp_path / "gateway.log").read_text().splitlines()]
    warnings = [line for line in lines if line.get("event") == "sandbox_mode_public_keys"]
    assert [w["level"] for w in warnings] == ["warning"]
