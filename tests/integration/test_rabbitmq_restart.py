"""The RabbitMQ bus across a broker restart (``rabbitmqctl stop_app`` / ``start_app``).

The promise under test: a publish either returns (the broker confirmed it) or raises a
``BusError`` within its timeout, and every confirmed message reaches the consumer once the
broker is back (duplicates allowed, counted by ``message_id``). Stopping the shared broker
disturbs everything else on it, so these tests run only when opted in
(``tests/support/broker.py``); they always start the broker again and wait for it.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
import pytest

from shared.bus.abc import BusError, Delivery, Message
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    EVENTS_EXCHANGE,
    Binding,
    ExchangeSpec,
    QueueSpec,
    Topology,
)
from tests.support.broker import broker_stopped, restart_guard, wait_until
from tests.support.gateway import serve_gateway

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    # aiormq drops the stream of a connection the broker force-closed (CONNECTION_FORCED on
    # stop_app) without closing it; the reconnected connection is a new one. The leak is the
    # library's, so it is ignored here, and collected in `cleanup` before other tests run.
    pytest.mark.filterwarnings("ignore:unclosed <StreamWriter:ResourceWarning"),
]

WAIT = 5.0
PUBLISH_TIMEOUT = 2.0
# A publish must end by its timeout; allow for the event loop being busy with its neighbours.
PUBLISH_SLACK = 0.5
BATCH = 5  # publishes in flight together
PAUSE = 0.1  # between batches: a few hundred messages over the whole restart
BEFORE_STOP = 50  # confirmed before the broker is stopped
AFTER_RECOVERY = 50  # confirmed after it is back
DOWN_TIMEOUT = 10.0  # for the bus to notice the broker went away
RECONNECT_TIMEOUT = 10.0  # reconnect interval 1 s, plus redeclaring topology and consumers
DRAIN_TIMEOUT = 30.0
CALLBACKS_WHILE_DOWN = 10
WECOM_DEADLINE_S = 1.0  # WeCom gives up on a callback answer after 1000 ms


@pytest.fixture(scope="session", autouse=True)
def _restart_allowed() -> None:
    """Skip before anything touches the broker: session scope runs ahead of ``amqp_url``."""
    restart_guard()


@dataclass
class Outcomes:
    """What each publish of the publishing loop ended with."""

    confirmed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unexpected: list[tuple[str, BaseException]] = field(default_factory=list)
    slowest_s: float = 0.0


async def _publish_one(bus: RabbitMQBus, exchange: str, message_id: str, out: Outcomes) -> None:
    started = time.monotonic()
    message = Message(body=b'{"n": "%s"}' % message_id.encode(), message_id=message_id, type="t")
    try:
        await bus.publish(exchange, "restart", message, timeout=PUBLISH_TIMEOUT)
    except BusError:
        out.failed.append(message_id)
    except Exception as exc:  # anything but a BusError breaks the contract; the test reports it
        out.unexpected.append((message_id, exc))
    else:
        out.confirmed.append(message_id)
    finally:
        out.slowest_s = max(out.slowest_s, time.monotonic() - started)


async def _publish_until(
    bus: RabbitMQBus, exchange: str, stop: asyncio.Event, out: Outcomes
) -> None:
    ids = (f"restart-{n:06d}" for n in itertools.count())
    while not stop.is_set():
        batch = list(itertools.islice(ids, BATCH))
        await asyncio.gather(*(_publish_one(bus, exchange, mid, out) for mid in batch))
        await asyncio.sleep(PAUSE)


@dataclass
class Received:
    """Message ids a consumer saw, and an event set once every expected id has arrived."""

    ids: set[str] = field(default_factory=set)
    missing: set[str] | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    async def handler(self, delivery: Delivery) -> None:
        self.ids.add(delivery.message.message_id)
        if self.missing is not None:
            self.missing.discard(delivery.message.message_id)
            if not self.missing:
                self.complete.set()

    def expect(self, ids: set[str]) -> None:
        self.missing = ids - self.ids
        if not self.missing:
            self.complete.set()


@pytest.fixture
def names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    """An exchange and a queue name unique to the test."""
    return f"test.restart.x.{suffix}", f"test.restart.q.{suffix}"


@pytest.fixture
async def cleanup(amqp_url: str) -> AsyncIterator[list[str]]:
    """Queues and exchanges (``exchange:<name>``) to delete after the test, broker permitting."""
    doomed: list[str] = []
    yield doomed
    gc.collect()  # the dropped stream's ResourceWarning must fire under this module's filter
    connection = await aio_pika.connect(amqp_url, timeout=WAIT)
    async with connection:
        channel = await connection.channel()
        for name in doomed:
            if name.startswith("exchange:"):
                await channel.exchange_delete(name.removeprefix("exchange:"))
            else:
                await channel.queue_delete(name)


async def test_no_confirmed_publish_is_lost_across_a_broker_restart(
    amqp_url: str, names: tuple[str, str], cleanup: list[str], request: pytest.FixtureRequest
) -> None:
    """Publishing straight through stop_app/start_app: each publish confirms or raises BusError
    in time, the bus is not ready while the broker is down, and the consumer started before the
    restart receives every confirmed message after it."""
    exchange, queue = names
    topology = Topology(
        exchanges=(ExchangeSpec(exchange, "topic"),),
        queues=(QueueSpec(queue, bindings=(Binding(exchange, "#"),), max_attempts=1),),
    )
    cleanup += [queue, f"{queue}.dead", f"exchange:{exchange}"]
    bus = RabbitMQBus(
        amqp_url, topology, connection_name=request.node.name, start_timeout=WAIT, close_grace=1.0
    )
    await bus.start()
    out, received, stop = Outcomes(), Received(), asyncio.Event()
    publisher: asyncio.Task[None] | None = None
    try:
        await bus.consume(queue, received.handler, prefetch=50)
        publisher = asyncio.create_task(_publish_until(bus, exchange, stop, out))
        await wait_until(lambda: len(out.confirmed) >= BEFORE_STOP, WAIT, "first confirms")

        async with broker_stopped():
            await wait_until(lambda: not bus.is_ready, DOWN_TIMEOUT, "the bus to report down")
            failed_before = len(out.failed)
            await wait_until(lambda: len(out.failed) > failed_before, WAIT, "a failed publish")
        back_at = time.monotonic()
        await wait_until(lambda: bus.is_ready, RECONNECT_TIMEOUT, "the bus to reconnect")
        reconnect_s = time.monotonic() - back_at
        after = len(out.confirmed)
        await wait_until(
            lambda: len(out.confirmed) >= after + AFTER_RECOVERY, WAIT * 2, "confirms after restart"
        )
        stop.set()
        await asyncio.wait_for(publisher, PUBLISH_TIMEOUT + WAIT)

        received.expect(set(out.confirmed))
        try:
            await asyncio.wait_for(received.complete.wait(), DRAIN_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"{len(received.missing or ())} confirmed messages never arrived")
    finally:
        stop.set()
        if publisher is not None and not publisher.done():
            publisher.cancel()
        await bus.close()

    assert out.unexpected == []
    assert out.slowest_s < PUBLISH_TIMEOUT + PUBLISH_SLACK
    assert len(out.confirmed) + len(out.failed) >= 2 * BEFORE_STOP + AFTER_RECOVERY
    assert set(out.confirmed) <= received.ids  # zero loss of confirmed messages
    assert set(out.confirmed[after:]) <= received.ids  # the old consumer resumed
    assert reconnect_s < RECONNECT_TIMEOUT


def _ticket(n: int) -> bytes:
    return (
        "<xml><SuiteId><![CDATA[wwsandbox0000000001]]></SuiteId>"
        "<InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>1700000000</TimeStamp>"
        f"<SuiteTicket><![CDATA[ticket-restart-{n}]]></SuiteTicket></xml>"
    ).encode()


async def test_gateway_answers_503_fast_while_the_broker_is_stopped(
    amqp_url: str, names: tuple[str, str], cleanup: list[str], request: pytest.FixtureRequest
) -> None:
    """With the broker stopped every callback gets 503 well inside WeCom's 1 s and /readyz is
    503, so WeCom retries; after start_app the gateway is ready and publishes again."""
    _, queue = names
    capture = QueueSpec(queue, bindings=(Binding(EVENTS_EXCHANGE, "#"),), dead_letter=False)
    cleanup.append(queue)
    bus = RabbitMQBus(
        amqp_url,
        BASE_TOPOLOGY.merged(Topology(queues=(capture,))),
        connection_name=request.node.name,
        start_timeout=WAIT,
    )
    async with serve_gateway(bus=bus) as gw:
        assert await gw.post("command", gw.seal(_ticket(0))) == (200, "success")

        answers: list[tuple[int, float]] = []
        async with broker_stopped():
            await wait_until(lambda: not bus.is_ready, DOWN_TIMEOUT, "the bus to report down")
            async with gw.session.get(gw.url("/readyz")) as response:
                down_ready = response.status
            for n in range(1, CALLBACKS_WHILE_DOWN + 1):
                started = time.monotonic()
                status, _ = await gw.post("command", gw.seal(_ticket(n)))
                answers.append((status, time.monotonic() - started))

        await wait_until(lambda: bus.is_ready, RECONNECT_TIMEOUT, "the bus to reconnect")
        async with gw.session.get(gw.url("/readyz")) as response:
            up_ready = response.status
        after = await gw.post("command", gw.seal(_ticket(CALLBACKS_WHILE_DOWN + 1)))

    assert down_ready == 503
    assert [status for status, _ in answers] == [503] * CALLBACKS_WHILE_DOWN
    assert max(seconds for _, seconds in answers) < WECOM_DEADLINE_S
    assert up_ready == 200
    assert after == (200, "success")
    connection = await aio_pika.connect(amqp_url, timeout=WAIT)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        # The callback before the stop and the one after it; none of the refused ones.
        assert declared.declaration_result.message_count == 2
