"""token_service as real processes on a real RabbitMQ, against the simulator.

The simulator stands in for WeCom (its ``/_sim/calls`` counts every token call), the
gateway turns the simulator's suite_ticket push into ``command.suite_ticket``, and up to
three ``python -m token_service`` processes share one SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.settings import GatewaySettings
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY, RPC_TOPOLOGY
from shared.storage.crypto import SecretBox
from shared.storage.sqlite import DB_FILE_NAME, SQLiteStore
from shared.tokens import TokensClient, TokenUnavailable
from shared.wecom.api import WeComClient, with_token
from simulator.app import STATE_KEY, build_simulator_app
from tests.support.gateway import Clock, serve_gateway
from tests.support.process import http_get
from tests.support.simulator import SimulatorHarness, quiet_settings
from tests.support.tokens import (
    DATA_KEY,
    TokenProcesses,
    eventually,
    publish_grant,
    publish_ticket,
    token_processes,
)
from token_service.store import COLLECTIONS, StoredTokens

pytestmark = pytest.mark.integration

CORP = "wwtokencorp"


@pytest.fixture(scope="module")
def vhost_url(module_amqp_url: str) -> str:
    return module_amqp_url


async def simulator(**overrides: Any) -> tuple[SimulatorHarness, TestServer]:
    """A simulator on real time (the token_service processes run on real time too)."""
    app = build_simulator_app(quiet_settings(**overrides), clock=time.time)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    return SimulatorHarness(session, server, app[STATE_KEY]), server


@pytest.fixture
async def client_bus(vhost_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RabbitMQBus]:
    bus = RabbitMQBus(
        vhost_url, BASE_TOPOLOGY.merged(RPC_TOPOLOGY), connection_name=request.node.name
    )
    await bus.start()
    yield bus
    await bus.close()


async def calls(sim: SimulatorHarness) -> dict[str, int]:
    _, answer = await sim.call("GET", "/_sim/calls")
    counts: dict[str, int] = answer["calls"]
    return counts


def served_corp_tokens(port: int) -> float:
    """How many corp tokens one replica has handed out (its /metrics)."""
    _, body = http_get(f"http://127.0.0.1:{port}/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("wecom_token_served_total{") and 'kind="corp"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def install(sim: SimulatorHarness, tokens: TokensClient, corp: str) -> tuple[str, int]:
    """Install the app in ``corp`` at the simulator; its permanent code and agent id."""
    answer = await sim.install(corp, "alice", via="redirect")
    suite = await tokens.get("suite")
    exchanged = await sim.service(
        "get_permanent_code", suite.token, {"auth_code": answer["auth_code"]}
    )
    return exchanged["permanent_code"], exchanged["auth_info"]["agent"][0]["agentid"]


async def test_tokens_end_to_end_across_three_replicas_and_a_restart(
    vhost_url: str, client_bus: RabbitMQBus, tmp_path: Path
) -> None:
    """Three replicas make one WeCom call per token, share refreshes, keep tokens over a restart."""
    tokens = TokensClient(client_bus, timeout_s=15)
    gateway_bus = RabbitMQBus(vhost_url, BASE_TOPOLOGY, connection_name="tokens-gateway")
    clock = Clock(wall=time.time())
    async with serve_gateway(GatewaySettings(), bus=gateway_bus, clock=clock) as gw:
        # The simulator pushes its callbacks to this gateway, as WeCom would.
        sim, sim_server = await simulator(sim_command_url=gw.url("/wecom/command"))
        try:
            with token_processes(
                amqp_url=vhost_url, api_base=sim.url("").rstrip("/"), data_dir=tmp_path
            ) as cluster:
                cluster.start(3)
                await _scenario(sim, tokens, cluster, client_bus)
        finally:
            await sim.session.close()
            await sim_server.close()


async def _scenario(
    sim: SimulatorHarness,
    tokens: TokensClient,
    cluster: TokenProcesses,
    bus: RabbitMQBus,
) -> None:
    # No ticket yet: a clear, retryable not_ready error.
    with pytest.raises(TokenUnavailable) as caught:
        await tokens.get("suite")
    assert caught.value.error_code == "not_ready"
    assert "every 10 minutes" in caught.value.message

    # The simulator pushes a ticket through the gateway; a suite token follows.
    status, _ = await sim.call("POST", "/_sim/suite_ticket")
    assert status == 200
    suite = await eventually(lambda: tokens.get("suite"))
    assert suite.token

    code, agent_id = await install(sim, tokens, CORP)
    await publish_grant(bus, CORP, code, agent_id)

    async def corp_token() -> str:
        return (await tokens.get("corp", corp_id=CORP)).token

    first = await eventually(corp_token)
    # 500 concurrent requests spread over the three replicas: one WeCom call in all.
    answers = await asyncio.gather(*(corp_token() for _ in range(500)))
    assert set(answers) == {first}
    counted = await calls(sim)
    assert counted["/cgi-bin/service/get_corp_token"] == 1
    assert counted["/cgi-bin/service/get_suite_token"] == 1
    assert cluster.log_text().count('"token_refreshed"') == 2  # suite once, corp once
    refreshed = [
        json.loads(line)
        for line in cluster.log_text().splitlines()
        if '"token_refreshed"' in line and line.startswith("{")
    ]
    assert {(entry["kind"], entry.get("corp_id")) for entry in refreshed} == {
        ("suite", None),
        ("corp", CORP),
    }  # the log line names the corp whose token it is
    # Every replica answered some of them, so the single flight really spanned processes.
    served = [served_corp_tokens(port) for port in cluster.ports]
    assert sum(served) >= 500
    assert all(count > 0 for count in served), served

    # A stale report refreshes once, however many replicas hear it; an old report not at all.
    fresh = await asyncio.gather(
        *(tokens.get("corp", corp_id=CORP, stale=first) for _ in range(30))
    )
    assert len({reply.token for reply in fresh}) == 1
    assert fresh[0].token != first
    again = await tokens.get("corp", corp_id=CORP, stale=first)
    assert again.token == fresh[0].token
    assert (await calls(sim))["/cgi-bin/service/get_corp_token"] == 2

    # Graceful stop, then one replica comes back: ticket and tokens survived the restart.
    assert cluster.stop_all() == [0, 0, 0]
    cluster.start(1)
    assert (await tokens.get("suite")).token == suite.token
    assert (await tokens.get("corp", corp_id=CORP)).token == fresh[0].token
    after_restart = await calls(sim)
    assert after_restart["/cgi-bin/service/get_corp_token"] == 2
    assert after_restart["/cgi-bin/service/get_suite_token"] == 1

    # A replica that took the jsapi lease and crashed blocks the others only until it expires.
    store = SQLiteStore(Path(cluster.env["DATA_DIR"]) / DB_FILE_NAME, COLLECTIONS)
    await store.start()
    try:
        lease = await StoredTokens(store, SecretBox(DATA_KEY)).try_lease(
            f"jsapi:{CORP}", "crashed-replica", 2.0
        )
        assert lease is not None
    finally:
        await store.stop()
    started = time.monotonic()
    ticket = await tokens.get("jsapi", corp_id=CORP)
    assert time.monotonic() - started >= 1.5
    assert ticket.token
    assert (await calls(sim)).get("/cgi-bin/get_jsapi_ticket") == 1
    # Secrets never reach the logs.
    logs = cluster.log_text()
    for secret in (suite.token, first, fresh[0].token, ticket.token, code):
        assert secret not in logs


async def test_short_lived_tokens_never_fail_a_caller(
    vhost_url: str, client_bus: RabbitMQBus, tmp_path: Path
) -> None:
    """The simulator issues 3-second tokens; a caller using them for 8 s never sees an error:
    the service refreshes near expiry, and with_token retries a rejected one once."""
    sim, sim_server = await simulator(sim_token_ttl_s=3)
    tokens = TokensClient(client_bus, timeout_s=15)
    api = WeComClient(sim.url("").rstrip("/"))
    try:
        with token_processes(
            amqp_url=vhost_url, api_base=sim.url("").rstrip("/"), data_dir=tmp_path
        ) as cluster:
            cluster.start(1)
            _, pushed = await sim.call("POST", "/_sim/suite_ticket")
            await publish_ticket(client_bus, pushed["ticket"])
            await eventually(lambda: tokens.get("suite"))
            code, agent_id = await install(sim, tokens, "wwshortcorp")
            await publish_grant(client_bus, "wwshortcorp", code, agent_id)
            await eventually(lambda: tokens.get("corp", corp_id="wwshortcorp"))

            async def use(corp_token: str) -> dict[str, Any]:
                return await api.get(
                    "/cgi-bin/get_jsapi_ticket", params={"access_token": corp_token}
                )

            source = tokens.source("corp", corp_id="wwshortcorp")
            deadline = time.monotonic() + 8
            uses = 0
            while time.monotonic() < deadline:
                answer = await with_token(source, use)
                assert answer["ticket"]
                uses += 1
                await asyncio.sleep(0.1)
            assert uses > 40
            # The tokens did expire and were replaced: several corp token calls happened.
            assert (await calls(sim))["/cgi-bin/service/get_corp_token"] >= 3
    finally:
        await api.close()
        await sim.session.close()
        await sim_server.close()
