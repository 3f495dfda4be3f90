"""Bus benchmark: the RabbitMQ bus against the local broker, in a vhost of its own.

20,000 persistent 1 KB messages on one durable quorum queue (the product's default), through
``RabbitMQBus`` exactly as services use it:

- publish with confirm, one at a time and with many confirms in flight (``IN_FLIGHT``);
- consume and ack with prefetch 100 (the queue pre-filled by the previous step);
- end-to-end latency from publish to handler, the send time in the body, while publishing
  at a steady ``LATENCY_RATE`` with the consumer running in the same process;
- the gateway benchmark (``bench/gateway.py``) re-run on RabbitMQ, and the gateway's answers
  while the broker is stopped (``rabbitmqctl stop_app``, always restarted).

Writes ``bench/results/bus.json``; ``bench/run_all.py`` turns it into docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from typing import Any

import aio_pika

from bench import broker, gateway
from shared.bus.abc import Delivery, Message
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY, EVENTS_EXCHANGE, Binding, QueueSpec, Topology

MESSAGES = 20_000
BODY_BYTES = 1024
IN_FLIGHT = (100, 500)  # confirms outstanding at once, for the concurrent publish runs
PREFETCH = 100
LATENCY_RATE = 1000  # messages/s while measuring latency: about a third of the publish capacity
QUEUE = "bench.bus"
ROUTING_KEY = "bench.message"
TIMEOUT = 30.0  # per publish: a loaded broker is slow, but never this slow


def _body(sent_ns: int) -> bytes:
    # The send time (monotonic ns, same process) in the first 8 bytes, padded to 1 KB.
    return struct.pack(">q", sent_ns) + b"x" * (BODY_BYTES - 8)


def _message(tag: str, index: int) -> Message:
    return Message(body=_body(time.monotonic_ns()), message_id=f"{tag}-{index}", type=ROUTING_KEY)


async def _publish_all(bus: RabbitMQBus, tag: str, in_flight: int) -> float:
    """Publish ``MESSAGES`` with ``in_flight`` confirms outstanding; messages per second."""
    indexes = iter(range(MESSAGES))

    async def worker() -> None:
        # Workers share one iterator, so exactly ``in_flight`` publishes wait at any time.
        for index in indexes:
            await bus.publish(EVENTS_EXCHANGE, ROUTING_KEY, _message(tag, index), timeout=TIMEOUT)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return MESSAGES / (time.perf_counter() - started)


async def _purge(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=TIMEOUT)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(QUEUE, passive=True)
        await queue.purge()


async def _consume_all(bus: RabbitMQBus) -> float:
    """Consume and ack the ``MESSAGES`` waiting in the queue; messages per second."""
    done = asyncio.Event()
    count = 0

    async def handler(_: Delivery) -> None:
        nonlocal count
        count += 1
        if count == MESSAGES:
            done.set()

    started = time.perf_counter()
    consumer = await bus.consume(QUEUE, handler, prefetch=PREFETCH)
    await asyncio.wait_for(done.wait(), TIMEOUT * 4)
    elapsed = time.perf_counter() - started
    await consumer.cancel(grace=TIMEOUT)
    return MESSAGES / elapsed


async def _latency(bus: RabbitMQBus) -> dict[str, float]:
    """Publish ``MESSAGES`` at ``LATENCY_RATE`` with a consumer running; latency in ms."""
    latencies: list[float] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        (sent_ns,) = struct.unpack_from(">q", delivery.message.body)
        latencies.append((time.monotonic_ns() - sent_ns) / 1e6)
        if len(latencies) == MESSAGES:
            done.set()

    consumer = await bus.consume(QUEUE, handler, prefetch=PREFETCH)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    started = loop.time()
    for index in range(MESSAGES):
        # Steady pace: sleep until this message is due, never waiting for earlier confirms.
        due = started + index / LATENCY_RATE
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        task = loop.create_task(
            bus.publish(EVENTS_EXCHANGE, ROUTING_KEY, _message("lat", index), timeout=TIMEOUT)
        )
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    await asyncio.wait_for(done.wait(), TIMEOUT * 4)
    await consumer.cancel(grace=TIMEOUT)
    ordered = sorted(latencies)
    return {
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _bus_numbers(url: str) -> dict[str, Any]:
    queue = QueueSpec(QUEUE, bindings=(Binding(EVENTS_EXCHANGE, "bench.#"),), max_attempts=1)
    bus = RabbitMQBus(url, BASE_TOPOLOGY.merged(Topology(queues=(queue,))), connection_name="bench")
    await bus.start()
    try:
        one_at_a_time = await _publish_all(bus, "seq", 1)
        concurrent: dict[str, float] = {}
        for in_flight in IN_FLIGHT:
            await _purge(url)
            concurrent[str(in_flight)] = await _publish_all(bus, f"c{in_flight}", in_flight)
        # The queue now holds the last run's MESSAGES: consume exactly those.
        consume = await _consume_all(bus)
        latency = await _latency(bus)
    finally:
        await bus.close()
    best = max(concurrent.values())
    return {
        "publish_one_at_a_time": round(one_at_a_time),
        "publish_concurrent": {k: round(v) for k, v in concurrent.items()},
        "publish_concurrent_best": round(best),
        "ratio": round(best / one_at_a_time, 2),
        "consume_ack": round(consume),
        "latency": latency,
    }


def run() -> dict[str, Any]:
    """Every RabbitMQ number, or ``{"skipped": reason}`` when there is no usable broker."""
    problem = broker.unavailable()
    if problem is not None:
        return {"skipped": problem}
    with broker.vhost() as url:
        result: dict[str, Any] = {
            "messages": MESSAGES,
            "body_bytes": BODY_BYTES,
            "prefetch": PREFETCH,
            "latency_rate": LATENCY_RATE,
            "cpus": os.cpu_count(),
            "bus": asyncio.run(_bus_numbers(url)),
        }
        if os.environ.get("BENCH_BUS_ONLY") != "1":
            result["gateway"] = gateway.run_rabbitmq(url)
            result["peer"] = gateway.run_peer(url)
            result["broker_stopped"] = gateway.run_broker_stopped(url)
    gateway.RESULTS.mkdir(exist_ok=True)
    (gateway.RESULTS / "bus.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
