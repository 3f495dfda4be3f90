"""The notifier over the real RabbitMQ against the simulator: requests per second from
publish to ``notify.result``, and the request→result latency (p50/p99).

The target is per notifier process, so the notifier measured is a process of its own
(``python -m notifier`` at default settings, SQLite store), as an operator runs it. This
process holds the rest, wired like the integration tests on a throw-away vhost:
token_service, a fake ``rpc.auth`` server, the simulator standing in for WeCom (its send
limits off: the limits are measured by the tests, not here; the notifier calls it directly,
not through the tests' fault proxy), the publisher and the collector of results. Messages go
to 50 members in turn. Three measurements: one request at a time (idle latency), a steady
200 requests/s (latency at half the 400/s target), and a burst (throughput).

For reference the burst is run once more with the notifier inside this process, sharing
one event loop (and so one core) with everything above.

``python -m bench.notify`` prints the JSON result; it is never part of the test suite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog

from bench import broker
from notifier.settings import NotifierSettings
from tests.support.notifier import (
    NotifierRig,
    notifier_process_env,
    notifier_rig,
    start_notifier_process,
    text_request,
    wait_notifier_ready,
)

THROUGHPUT_REQUESTS = 2_000
PUBLISH_CONCURRENCY = 100
LATENCY_REQUESTS = 300
# Targets (issue 17): >= 400 requests/s per notifier process, p99 <= 100 ms at half that rate.
PACED_RATE = 200
PACED_REQUESTS = 1_000
RESULTS = Path(__file__).resolve().parent / "results"
# Recipients rotate over many members: sends to one member leave one at a time, in order
# (docs/notifier.md), and WeCom lets a member receive only 30 a minute anyway.
USERS = tuple(f"member{n:02d}" for n in range(50))
SIMULATOR = {"sim_limits": False}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _throughput(rig: NotifierRig) -> dict[str, Any]:
    requests = [
        text_request(f"bench {n}", users=(USERS[n % len(USERS)],))
        for n in range(THROUGHPUT_REQUESTS)
    ]
    published: dict[str, float] = {}
    gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

    async def publish(request: dict[str, Any]) -> None:
        async with gate:
            published[request["id"]] = time.perf_counter()
            await rig.publish(request)

    started = time.perf_counter()
    await asyncio.gather(*(publish(request) for request in requests))
    for request in requests:
        await rig.results.wait(request["id"], timeout=300)
    elapsed = time.perf_counter() - started
    latencies = [(rig.results.arrived[rid] - t) * 1000 for rid, t in published.items()]
    statuses = {r["id"]: rig.results.by_id[r["id"]][0].status for r in requests}
    return {
        "requests": THROUGHPUT_REQUESTS,
        "publish_concurrency": PUBLISH_CONCURRENCY,
        "requests_per_s": round(THROUGHPUT_REQUESTS / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "not_sent": sum(1 for status in statuses.values() if status != "sent"),
    }


async def _latency(rig: NotifierRig) -> dict[str, Any]:
    """One request at a time: the latency of a request on an idle notifier."""
    latencies = []
    for n in range(LATENCY_REQUESTS):
        request = text_request(f"latency {n}", users=(USERS[n % len(USERS)],))
        started = time.perf_counter()
        await rig.publish(request)
        await rig.results.wait(request["id"], timeout=30)
        latencies.append((rig.results.arrived[request["id"]] - started) * 1000)
    return {
        "requests": LATENCY_REQUESTS,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
    }


async def _paced(rig: NotifierRig) -> dict[str, Any]:
    """Requests published at a steady ``PACED_RATE`` per second (half the throughput target):
    the request→result latency of a notifier that keeps up."""
    loop = asyncio.get_running_loop()
    requests = [
        text_request(f"paced {n}", users=(USERS[n % len(USERS)],)) for n in range(PACED_REQUESTS)
    ]
    published: dict[str, float] = {}
    start = loop.time()
    for n, request in enumerate(requests):
        delay = start + n / PACED_RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        published[request["id"]] = time.perf_counter()
        await rig.publish(request)
    for request in requests:
        await rig.results.wait(request["id"], timeout=120)
    latencies = [(rig.results.arrived[rid] - t) * 1000 for rid, t in published.items()]
    return {
        "requests": PACED_REQUESTS,
        "rate_per_s": PACED_RATE,
        "achieved_rate_per_s": round(PACED_REQUESTS / (loop.time() - start), 1),
        "p50_ms": round(_percentile(latencies, 0.50), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
    }


async def _measure(url: str, data_dir: Path) -> dict[str, Any]:
    async with notifier_rig(
        url, data_dir, name="bench-notify", sim=SIMULATOR, members=USERS, start_notifier=False
    ) as rig:
        store = data_dir / "notifier-process"
        store.mkdir()
        env = notifier_process_env(url, rig.sim.url("").rstrip("/"), store, LOG_LEVEL="warning")
        log = data_dir / "notifier.log"
        process, port = start_notifier_process(env, log)
        try:
            await asyncio.to_thread(wait_notifier_ready, process, port, log)
            idle = await _latency(rig)
            paced = await _paced(rig)
            loaded = await _throughput(rig)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 30)
        sent = len(await rig.sent())
    return {
        "idle_latency": idle,
        "paced_latency": paced,
        "throughput": loaded,
        "simulator_sends": sent,
        "prefetch": NotifierSettings.model_fields["notify_prefetch"].default,
        "store": "sqlite",
    }


async def _measure_one_loop(url: str, data_dir: Path) -> dict[str, Any]:
    """The burst with the notifier in this process, on the event loop of everything else."""
    async with notifier_rig(
        url,
        data_dir,
        name="bench-notify-one-loop",
        sim=SIMULATOR,
        members=USERS,
        notify_limit_member_per_minute=0,
        notify_limit_member_per_hour=0,
        notify_limit_app_per_day=0,
    ) as rig:
        return await _throughput(rig)


def run() -> dict[str, Any]:
    """The notifier numbers, or ``{"skipped": reason}`` without a usable broker."""
    # A log line per message would measure the terminal; keep warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    problem = broker.unavailable()
    if problem is not None:
        return {"skipped": problem}
    with broker.vhost() as url, tempfile.TemporaryDirectory(prefix="bench-notify-") as folder:
        result = asyncio.run(_measure(url, Path(folder)))
    with broker.vhost() as url, tempfile.TemporaryDirectory(prefix="bench-notify-") as folder:
        result["one_event_loop"] = asyncio.run(_measure_one_loop(url, Path(folder)))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "notify.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    print(json.dumps(run(), indent=2))


if __name__ == "__main__":
    main()
