"""token_service over the real RabbitMQ: cached ``rpc.tokens`` latency and throughput, and how
many WeCom token calls 10,000 concurrent requests across 3 replicas cause.

Three ``python -m token_service`` processes share one SQLite file in a temporary DATA_DIR and
a throw-away vhost; the simulator (in this process, real time) stands in for WeCom and counts
every call. ``python -m bench.tokens`` prints the JSON result.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from bench import broker
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY, RPC_TOPOLOGY
from shared.tokens import TokensClient
from simulator.app import STATE_KEY, build_simulator_app
from tests.support.simulator import SimulatorHarness, quiet_settings
from tests.support.tokens import eventually, publish_grant, publish_ticket, token_processes

REPLICAS = 3
COLD_REQUESTS = 10_000
LATENCY_REQUESTS = 2_000
THROUGHPUT_REQUESTS = 20_000
THROUGHPUT_CONCURRENCY = 200
RESULTS = Path(__file__).resolve().parent / "results"


async def _calls(sim: SimulatorHarness) -> dict[str, int]:
    _, answer = await sim.call("GET", "/_sim/calls")
    counts: dict[str, int] = answer["calls"]
    return counts


async def _install(
    sim: SimulatorHarness, tokens: TokensClient, bus: RabbitMQBus, corp: str
) -> None:
    answer = await sim.install(corp, "bench-user", via="redirect")
    suite = await tokens.get("suite")
    exchanged = await sim.service(
        "get_permanent_code", suite.token, {"auth_code": answer["auth_code"]}
    )
    await publish_grant(
        bus, corp, exchanged["permanent_code"], exchanged["auth_info"]["agent"][0]["agentid"]
    )


async def _cold_burst(sim: SimulatorHarness, tokens: TokensClient, corp: str) -> dict[str, Any]:
    """10,000 concurrent requests for a corp token nobody has fetched yet."""
    before = await _calls(sim)
    started = time.perf_counter()
    replies = await asyncio.gather(
        *(tokens.get("corp", corp_id=corp) for _ in range(COLD_REQUESTS))
    )
    elapsed = time.perf_counter() - started
    after = await _calls(sim)
    path = "/cgi-bin/service/get_corp_token"
    return {
        "requests": COLD_REQUESTS,
        "distinct_tokens": len({reply.token for reply in replies}),
        "wecom_corp_token_calls": after.get(path, 0) - before.get(path, 0),
        "seconds": round(elapsed, 2),
    }


async def _latency(tokens: TokensClient, corp: str) -> dict[str, float]:
    """One request at a time: the round trip of a cached token."""
    samples = []
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        await tokens.get("corp", corp_id=corp)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "requests": LATENCY_REQUESTS,
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
        "max_ms": round(samples[-1], 3),
    }


async def _throughput(tokens: TokensClient, corp: str) -> dict[str, float]:
    """Cached requests with a fixed number in flight."""
    remaining = THROUGHPUT_REQUESTS

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await tokens.get("corp", corp_id=corp)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(THROUGHPUT_CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return {
        "requests": THROUGHPUT_REQUESTS,
        "concurrency": THROUGHPUT_CONCURRENCY,
        "calls_per_s": round(THROUGHPUT_REQUESTS / elapsed),
    }


async def _measure(url: str, data_dir: Path) -> dict[str, Any]:
    app = build_simulator_app(quiet_settings(), clock=time.time)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    bus = RabbitMQBus(url, BASE_TOPOLOGY.merged(RPC_TOPOLOGY), connection_name="bench-tokens")
    await bus.start()
    try:
        async with aiohttp.ClientSession() as session:
            sim = SimulatorHarness(session, server, app[STATE_KEY])
            tokens = TokensClient(bus, timeout_s=60)
            base = str(server.make_url("")).rstrip("/")
            with token_processes(amqp_url=url, api_base=base, data_dir=data_dir) as cluster:
                cluster.start(REPLICAS)
                _, pushed = await sim.call("POST", "/_sim/suite_ticket")
                await publish_ticket(bus, pushed["ticket"])
                await eventually(lambda: tokens.get("suite"))
                await _install(sim, tokens, bus, "wwbenchcold")
                await _install(sim, tokens, bus, "wwbenchwarm")
                await eventually(lambda: tokens.get("corp", corp_id="wwbenchwarm"))
                cold = await _cold_burst(sim, tokens, "wwbenchcold")
                latency = await _latency(tokens, "wwbenchwarm")
                throughput = await _throughput(tokens, "wwbenchwarm")
                calls = await _calls(sim)
                stopped = cluster.stop_all()
    finally:
        await bus.close()
        await server.close()
    return {
        "replicas": REPLICAS,
        "cold_burst": cold,
        "cached_latency": latency,
        "cached_throughput": throughput,
        "suite_token_calls": calls.get("/cgi-bin/service/get_suite_token", 0),
        "exit_codes": stopped,
    }


def run() -> dict[str, Any]:
    """The token numbers, or ``{"skipped": reason}`` without a usable broker."""
    problem = broker.unavailable()
    if problem is not None:
        return {"skipped": problem}
    with broker.vhost() as url, tempfile.TemporaryDirectory(prefix="bench-tokens-") as folder:
        result = asyncio.run(_measure(url, Path(folder)))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tokens.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    print(json.dumps(run(), indent=2))


if __name__ == "__main__":
    main()
