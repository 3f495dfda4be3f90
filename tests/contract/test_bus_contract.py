"""The bus contract, written once against the ``Bus`` protocol and run on every implementation.

To add an implementation, append an adapter to ``IMPLEMENTATIONS``: it builds a bus for a
topology, reads a queue's depth (ready messages), and cleans up after the test. The RabbitMQ
adapter runs in the session's test vhost (``amqp_url`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from shared.bus.abc import (
    AlreadySettled,
    Bus,
    BusError,
    Delivery,
    Message,
    PublishRejected,
    RetryLater,
    RpcTimeout,
    TopologyError,
    Unroutable,
    attempt_of,
)
from shared.bus.inprocess import InProcessBus
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import Binding, ExchangeSpec, QueueSpec, Topology
from shared.errors import InvalidRequest, NotFound, Unavailable
from tests.support.broker import wait_until

WAIT = 5.0  # generous upper bound for anything the tests wait on; normally milliseconds
RETRY_DELAYS = (0.2, 0.3)  # seconds before the 2nd and the 3rd attempt on the retry queue
RETRY_ATTEMPTS = 3
# Timers and broker TTLs are millisecond-precise; allow for rounding, never for early firing.
CLOCK_SLACK = 0.01

Depth = Callable[[str], Awaitable[int]]


class BusImplementation(Protocol):
    """How the suite builds, inspects and disposes of one bus implementation."""

    # Whether a publish rejected by one full queue is stored in no queue at all. RabbitMQ
    # still enqueues it in the other target queues (docs: "Queue Length Limit"), so only
    # the in-process bus promises it.
    atomic_publish: bool
    # How many publishes a full reject-publish queue still accepts before it rejects. RabbitMQ
    # quorum queues (3.10, observed here) switch to rejecting only once a publish has taken
    # them past x-max-length, so they hold max_length + 1; classic queues and the in-process
    # bus reject at max_length exactly.
    overflow_slack: int

    def create(self, topology: Topology, registry: CollectorRegistry | None = None) -> Bus: ...

    async def queue_depth(self, bus: Bus, queue: str) -> int: ...

    async def dispose(self, bus: Bus, topology: Topology) -> None: ...


class InProcessImplementation:
    atomic_publish = True
    overflow_slack = 0

    @classmethod
    def for_test(cls, request: pytest.FixtureRequest) -> BusImplementation:
        return cls()

    def create(self, topology: Topology, registry: CollectorRegistry | None = None) -> Bus:
        return InProcessBus(topology, close_grace=0.5, registry=registry)

    async def queue_depth(self, bus: Bus, queue: str) -> int:
        assert isinstance(bus, InProcessBus)
        return bus.queue_depth(queue)

    async def dispose(self, bus: Bus, topology: Topology) -> None:
        await bus.close()


class RabbitMQImplementation:
    """The RabbitMQ bus in the session's vhost; depth and cleanup go over a side connection,
    so they see the broker's state rather than anything the bus under test remembers."""

    atomic_publish = False
    overflow_slack = 1

    def __init__(self, url: str, test_name: str) -> None:
        self._url = url
        self._test_name = test_name
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    @classmethod
    def for_test(cls, request: pytest.FixtureRequest) -> BusImplementation:
        return cls(cast(str, request.getfixturevalue("amqp_url")), request.node.name)

    def create(self, topology: Topology, registry: CollectorRegistry | None = None) -> Bus:
        return RabbitMQBus(
            self._url,
            topology,
            connection_name=self._test_name,
            close_grace=0.5,
            start_timeout=WAIT,
            registry=registry,
        )

    async def _side_channel(self) -> AbstractChannel:
        if self._connection is None:
            self._connection = await aio_pika.connect(
                self._url, timeout=WAIT, client_properties={"connection_name": "side"}
            )
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel()
        return self._channel

    async def queue_depth(self, bus: Bus, queue: str) -> int:
        channel = await self._side_channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0

    async def dispose(self, bus: Bus, topology: Topology) -> None:
        await bus.close()
        try:
            channel = await self._side_channel()
            for queue in topology.queues:
                await channel.queue_delete(queue.name)
                if queue.dead_letter_queue is not None:
                    await channel.queue_delete(queue.dead_letter_queue)
                for retry_queue in queue.retry_queues:
                    await channel.queue_delete(retry_queue)
            for exchange in topology.exchanges:
                await channel.exchange_delete(exchange.name)
        finally:
            if self._connection is not None:
                await self._connection.close()


ImplementationFactory = Callable[[pytest.FixtureRequest], BusImplementation]

IMPLEMENTATIONS = [
    pytest.param(InProcessImplementation.for_test, id="inprocess"),
    pytest.param(RabbitMQImplementation.for_test, id="rabbitmq", marks=pytest.mark.integration),
]


@dataclass(frozen=True)
class Names:
    """Exchange and queue names unique to one test, so tests never see each other's messages."""

    suffix: str

    def __getattr__(self, role: str) -> str:
        if role.startswith("_"):  # keep copy, pickle and pytest's introspection working
            raise AttributeError(role)
        return f"test.{role}.{self.suffix}"

    def topology(self) -> Topology:
        events, unrouted, strict, direct = self.events, self.unrouted, self.strict, self.direct
        return Topology(
            exchanges=(
                ExchangeSpec(events, "topic", alternate_exchange=unrouted),
                ExchangeSpec(unrouted, "fanout"),
                ExchangeSpec(strict, "topic"),
                ExchangeSpec(direct, "direct"),
            ),
            # Retries only where a test exercises them: on RabbitMQ each delay level is one
            # more queue to declare per test.
            queues=(
                QueueSpec(self.star, bindings=(Binding(events, "command.*"),), max_attempts=1),
                QueueSpec(self.hash, bindings=(Binding(events, "data.#"),), max_attempts=1),
                QueueSpec(self.unrouted_q, bindings=(Binding(unrouted, ""),), dead_letter=False),
                QueueSpec(self.strict_q, bindings=(Binding(strict, "only.this"),), max_attempts=1),
                QueueSpec(
                    self.exact, bindings=(Binding(direct, "notify.request"),), max_attempts=1
                ),
                QueueSpec(
                    self.small, bindings=(Binding(direct, "bounded"),), max_length=2, max_attempts=1
                ),
                QueueSpec(self.peer, bindings=(Binding(direct, "bounded"),), max_attempts=1),
                QueueSpec(self.work, bindings=(Binding(direct, "work"),), max_attempts=1),
                QueueSpec(
                    self.retrying,
                    bindings=(Binding(direct, "retrying"),),
                    max_attempts=RETRY_ATTEMPTS,
                    retry_delays=RETRY_DELAYS,
                ),
                QueueSpec(self.rpc, quorum=False, dead_letter=False, max_attempts=1),
            ),
        )


class Inbox:
    """A handler that records deliveries (optionally settling them) and lets tests wait."""

    def __init__(self, settle: Callable[[Delivery], Awaitable[object]] | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self._settle = settle
        self._changed = asyncio.Condition()

    async def __call__(self, delivery: Delivery) -> None:
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()
        if self._settle is not None:
            await self._settle(delivery)

    async def wait_for(self, count: int) -> list[Delivery]:
        async def arrived() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.deliveries) >= count)

        await asyncio.wait_for(arrived(), WAIT)
        return self.deliveries[:count]


def message(n: int) -> Message:
    return Message(body=b'{"n": %d}' % n, message_id=f"m-{n}", type="test.event")


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> BusImplementation:
    return cast(ImplementationFactory, request.param)(request)


@pytest.fixture
def names() -> Names:
    return Names(uuid.uuid4().hex[:10])


@pytest.fixture
async def bus(implementation: BusImplementation, names: Names) -> AsyncIterator[Bus]:
    bus = implementation.create(names.topology())
    await bus.start()
    yield bus
    await implementation.dispose(bus, names.topology())


@pytest.fixture
def depth(implementation: BusImplementation, bus: Bus) -> Depth:
    async def depth(queue: str) -> int:
        return await implementation.queue_depth(bus, queue)

    return depth


# -- routing ---------------------------------------------------------------------------------


async def test_topic_star_matches_exactly_one_word(bus: Bus, names: Names, depth: Depth) -> None:
    """``command.*`` takes every command type, and nothing shorter or longer."""
    await bus.publish(names.events, "command.suite_ticket", message(1))
    await bus.publish(names.events, "command", message(2))
    await bus.publish(names.events, "command.create_auth.extra", message(3))

    assert await depth(names.star) == 1
    assert await depth(names.unrouted_q) == 2


async def test_topic_hash_matches_zero_or_more_words(bus: Bus, names: Names, depth: Depth) -> None:
    """``data.#`` takes ``data`` itself and every key below it, but not look-alike prefixes."""
    for n, key in enumerate(["data", "data.message", "data.message.text", "database.x"]):
        await bus.publish(names.events, key, message(n))

    assert await depth(names.hash) == 3
    assert await depth(names.unrouted_q) == 1


async def test_direct_exchange_routes_only_the_exact_key(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """A direct binding is no pattern: ``notify.*`` or a longer key reaches nothing."""
    await bus.publish(names.direct, "notify.request", message(1))
    for key in ["notify.*", "notify.#", "notify.request.x", "Notify.request"]:
        with pytest.raises(Unroutable):
            await bus.publish(names.direct, key, message(2))

    assert await depth(names.exact) == 1


async def test_publish_returns_after_every_target_queue_stored_it(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """The confirm contract: once publish returns, the message is in each routed queue."""
    await bus.publish(names.direct, "bounded", message(1))

    assert await depth(names.small) == 1
    assert await depth(names.peer) == 1


async def test_unroutable_event_is_kept_by_the_alternate_exchange(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """An event type nobody binds yet is stored, with its routing key, instead of failing."""
    await bus.publish(names.events, "data.event.brand_new", message(1))
    await bus.publish(names.events, "nobody.listens", message(2))
    inbox = Inbox()
    await bus.consume(names.unrouted_q, inbox)

    [delivery] = await inbox.wait_for(1)
    assert (delivery.routing_key, delivery.message.message_id) == ("nobody.listens", "m-2")
    assert await depth(names.hash) == 1


async def test_unroutable_message_without_alternate_exchange_raises(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """With no alternate exchange, the publisher learns that nothing stored the message."""
    with pytest.raises(Unroutable):
        await bus.publish(names.strict, "other.key", message(1))

    assert await depth(names.strict_q) == 0


async def test_publish_to_undeclared_exchange_raises_topology_error(bus: Bus, names: Names) -> None:
    """A typo in an exchange name is a bug to surface, not a message to drop."""
    with pytest.raises(TopologyError):
        await bus.publish(names.nowhere, "command.x", message(1))


async def test_full_bounded_queue_rejects_the_publish(
    bus: Bus, names: Names, depth: Depth, implementation: BusImplementation
) -> None:
    """A full queue nacks the publish (reject-publish), so the publisher reports a failure."""
    accepted = 2 + implementation.overflow_slack
    for n in range(accepted):
        await bus.publish(names.direct, "bounded", message(n))

    with pytest.raises(PublishRejected):
        await bus.publish(names.direct, "bounded", message(accepted))

    assert await depth(names.small) == accepted
    if implementation.atomic_publish:
        assert await depth(names.peer) == accepted


async def test_concurrent_publishes_are_all_confirmed(bus: Bus, names: Names, depth: Depth) -> None:
    """Many publishes may await their confirms at once; each returns only once stored."""
    await asyncio.gather(*(bus.publish(names.direct, "work", message(n)) for n in range(100)))

    assert await depth(names.work) == 100


# -- consuming and settling ------------------------------------------------------------------


async def test_delivery_carries_the_published_properties(bus: Bus, names: Names) -> None:
    """Consumers de-duplicate and correlate on these, so every one must survive the trip."""
    sent = Message(
        body=b"{}",
        message_id="id-1",
        type="command.suite_ticket",
        headers={"attempt": 2},
        correlation_id="corr-1",
        reply_to="replies",
    )
    inbox = Inbox()
    await bus.consume(names.star, inbox)
    await bus.publish(names.events, "command.suite_ticket", sent)

    [delivery] = await inbox.wait_for(1)
    got = delivery.message
    assert (got.body, got.message_id, got.type, got.content_type) == (
        b"{}",
        "id-1",
        "command.suite_ticket",
        "application/json",
    )
    assert (got.correlation_id, got.reply_to, got.headers["attempt"]) == ("corr-1", "replies", 2)
    assert got.timestamp is not None
    assert (delivery.exchange, delivery.routing_key) == (names.events, "command.suite_ticket")
    assert delivery.redelivered is False


async def test_ack_removes_the_message(bus: Bus, names: Names, depth: Depth) -> None:
    """An acked message is gone: stopping the consumer does not bring it back."""
    inbox = Inbox(settle=lambda d: d.ack())
    consumer = await bus.consume(names.work, inbox)
    await bus.publish(names.direct, "work", message(1))
    [delivery] = await inbox.wait_for(1)

    await consumer.cancel(grace=WAIT)

    assert delivery.is_settled
    assert await depth(names.work) == 0


async def test_handler_returning_without_settling_acks(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """Handlers need not ack explicitly; a normal return means done."""
    inbox = Inbox()
    consumer = await bus.consume(names.work, inbox)
    await bus.publish(names.direct, "work", message(1))
    await inbox.wait_for(1)

    await consumer.cancel(grace=WAIT)

    assert await depth(names.work) == 0
    assert await depth(names.work + ".dead") == 0


async def test_nack_with_requeue_redelivers_marked_redelivered(bus: Bus, names: Names) -> None:
    """A message given back comes again, flagged so the handler knows it is a repeat."""

    async def nack_first(delivery: Delivery) -> None:
        if not delivery.redelivered:
            await delivery.nack(requeue=True)

    inbox = Inbox(settle=nack_first)
    await bus.consume(names.work, inbox)
    await bus.publish(names.direct, "work", message(1))

    first, second = await inbox.wait_for(2)
    assert (first.redelivered, second.redelivered) == (False, True)
    assert second.message.message_id == first.message.message_id


async def test_handler_exception_dead_letters_with_the_reason(bus: Bus, names: Names) -> None:
    """A poison message goes to ``<queue>.dead`` with why, and is logged without its body."""

    async def explode(delivery: Delivery) -> None:
        raise ValueError("cannot parse payload")

    dead = Inbox()
    with capture_logs() as logs:
        await bus.consume(names.work, explode)
        await bus.consume(names.work + ".dead", dead)
        await bus.publish(names.direct, "work", Message(b"secret-body", "m-9", "test.event"))
        [delivery] = await dead.wait_for(1)

    headers = delivery.message.headers
    assert headers["x-death-reason"] == "handler_failed"
    assert headers["x-death-queue"] == names.work
    assert headers["x-exception-type"] == "ValueError"
    assert headers["x-exception-message"] == "cannot parse payload"
    assert (delivery.message.message_id, delivery.message.body) == ("m-9", b"secret-body")
    [failure] = [e for e in logs if e["event"] == "consumer_handler_failed"]
    assert (failure["message_id"], failure["error_type"]) == ("m-9", "ValueError")
    assert "secret-body" not in repr(logs)


async def test_nack_without_requeue_dead_letters_as_rejected(bus: Bus, names: Names) -> None:
    """An explicit reject is dead-lettered too, with its own reason."""
    dead = Inbox()
    await bus.consume(names.work, Inbox(settle=lambda d: d.nack(requeue=False)))
    await bus.consume(names.work + ".dead", dead)
    await bus.publish(names.direct, "work", message(1))

    [delivery] = await dead.wait_for(1)
    assert delivery.message.headers["x-death-reason"] == "rejected"
    assert delivery.message.headers["x-death-queue"] == names.work


async def test_process_acks_on_success_and_dead_letters_on_error(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """``async with delivery.process()`` settles for the handler, like aio-pika's."""

    async def handle(delivery: Delivery) -> None:
        async with delivery.process():
            if delivery.message.message_id == "m-2":
                raise KeyError("missing field")

    dead = Inbox()
    consumer = await bus.consume(names.work, handle)
    await bus.consume(names.work + ".dead", dead)
    await bus.publish(names.direct, "work", message(1))
    await bus.publish(names.direct, "work", message(2))

    [delivery] = await dead.wait_for(1)
    await consumer.cancel(grace=WAIT)
    assert delivery.message.message_id == "m-2"
    assert delivery.message.headers["x-exception-type"] == "KeyError"
    assert await depth(names.work) == 0


async def test_dead_letters_are_counted_per_queue(
    implementation: BusImplementation, names: Names
) -> None:
    """Each queue with a ``.dead`` exports ``wecom_bus_dead_letters_total`` at 0 from the start,
    and every message dead-lettered from it (rejected, failed, retries exhausted) adds one."""
    registry = CollectorRegistry()
    topology = names.topology()
    bus = implementation.create(topology, registry=registry)

    def count(queue: str) -> float | None:
        return registry.get_sample_value("wecom_bus_dead_letters_total", {"queue": queue})

    assert (count(names.work), count(names.retrying)) == (0.0, 0.0)
    # Neither a queue without a dead-letter queue nor a dead-letter queue itself has one.
    assert (count(names.rpc), count(names.work + ".dead")) == (None, None)
    await bus.start()
    try:

        async def handle(delivery: Delivery) -> None:
            if delivery.message.message_id == "m-1":
                await delivery.nack(requeue=False)
            elif delivery.message.message_id == "m-2":
                raise ValueError("cannot parse payload")

        dead, retried_dead = Inbox(), Inbox()
        await bus.consume(names.work, handle)
        await bus.consume(names.work + ".dead", dead)
        await bus.consume(names.retrying, Attempts(lambda d: RetryLater("still down")))
        await bus.consume(names.retrying + ".dead", retried_dead)
        for n in (1, 2, 3):
            await bus.publish(names.direct, "work", message(n))
        await bus.publish(names.direct, "retrying", message(4))

        await dead.wait_for(2)
        await retried_dead.wait_for(1)
        # RabbitMQ: the copy reaches .dead before the original's ack returns, then it counts.
        await wait_until(lambda: count(names.work) == 2, WAIT, "two dead letters of work")
        await wait_until(lambda: count(names.retrying) == 1, WAIT, "one of retrying")
        assert count(names.work + ".dead") is None
    finally:
        await implementation.dispose(bus, topology)


async def test_settling_twice_raises_already_settled(bus: Bus, names: Names) -> None:
    """A second ack or nack is a handler bug and must not silently settle another message."""
    errors: list[BaseException] = []

    async def settle_twice(delivery: Delivery) -> None:
        await delivery.ack()
        for second in (delivery.ack(), delivery.nack(requeue=True)):
            try:
                await second
            except AlreadySettled as exc:
                errors.append(exc)

    inbox = Inbox(settle=settle_twice)
    consumer = await bus.consume(names.work, inbox)
    await bus.publish(names.direct, "work", message(1))
    await inbox.wait_for(1)
    await consumer.cancel(grace=WAIT)

    assert len(errors) == 2


# -- concurrency -----------------------------------------------------------------------------


async def test_prefetch_limits_unsettled_deliveries_per_consumer(bus: Bus, names: Names) -> None:
    """No more than ``prefetch`` handlers hold unsettled messages at once."""
    prefetch, total = 3, 10
    release, full = asyncio.Event(), asyncio.Event()
    active, peak, done = 0, 0, 0
    finished = asyncio.Event()

    async def hold(delivery: Delivery) -> None:
        nonlocal active, peak, done
        active += 1
        peak = max(peak, active)
        if active == prefetch:
            full.set()
        await release.wait()
        active -= 1
        await delivery.ack()
        done += 1
        if done == total:
            finished.set()

    for n in range(total):
        await bus.publish(names.direct, "work", message(n))
    await bus.consume(names.work, hold, prefetch=prefetch)
    await asyncio.wait_for(full.wait(), WAIT)
    release.set()
    await asyncio.wait_for(finished.wait(), WAIT)

    assert peak == prefetch


async def test_competing_consumers_share_work_without_loss_or_duplicates(
    bus: Bus, names: Names
) -> None:
    """Each message goes to exactly one of the consumers of a queue, and both do work."""
    total = 200
    seen: dict[str, list[str]] = {"a": [], "b": []}
    finished = asyncio.Event()

    def worker(name: str) -> Callable[[Delivery], Awaitable[None]]:
        async def handle(delivery: Delivery) -> None:
            await asyncio.sleep(0)  # let the other consumer run, as real handlers would
            seen[name].append(delivery.message.message_id)
            if len(seen["a"]) + len(seen["b"]) == total:
                finished.set()

        return handle

    await bus.consume(names.work, worker("a"), prefetch=5)
    await bus.consume(names.work, worker("b"), prefetch=5)
    for n in range(total):
        await bus.publish(names.direct, "work", message(n))
    await asyncio.wait_for(finished.wait(), WAIT)

    handled = seen["a"] + seen["b"]
    assert sorted(handled) == sorted(f"m-{n}" for n in range(total))
    assert seen["a"]
    assert seen["b"]


async def test_unsettled_messages_of_a_cancelled_consumer_go_to_another(
    bus: Bus, names: Names
) -> None:
    """When a consumer dies mid-work, its messages are redelivered, not lost."""
    stuck = Inbox(settle=lambda d: asyncio.Event().wait())  # never finishes
    first = await bus.consume(names.work, stuck, prefetch=10)
    for n in range(3):
        await bus.publish(names.direct, "work", message(n))
    await stuck.wait_for(3)
    survivor = Inbox()
    await bus.consume(names.work, survivor)

    await first.cancel(grace=0)

    redelivered = await survivor.wait_for(3)
    assert sorted(d.message.message_id for d in redelivered) == ["m-0", "m-1", "m-2"]
    assert all(d.redelivered for d in redelivered)


async def test_graceful_cancel_waits_for_in_flight_handlers(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """Shutdown lets a running handler finish and ack within the grace period."""
    release = asyncio.Event()
    finished: list[str] = []

    async def slow(delivery: Delivery) -> None:
        await release.wait()
        finished.append(delivery.message.message_id)

    inbox = Inbox(settle=slow)
    consumer = await bus.consume(names.work, inbox)
    await bus.publish(names.direct, "work", message(1))
    await inbox.wait_for(1)

    cancelling = asyncio.ensure_future(consumer.cancel(grace=WAIT))
    for _ in range(5):  # yield (no timed sleep) so the cancel is under way before the release
        await asyncio.sleep(0)
    assert not cancelling.done()
    release.set()
    await asyncio.wait_for(cancelling, WAIT)

    assert finished == ["m-1"]
    assert await depth(names.work) == 0


async def test_cancel_requeues_handlers_still_running_after_grace(
    bus: Bus, names: Names, depth: Depth
) -> None:
    """A handler that outlives the grace period is stopped and its message kept."""
    stuck = Inbox(settle=lambda d: asyncio.Event().wait())
    consumer = await bus.consume(names.work, stuck)
    await bus.publish(names.direct, "work", message(1))
    await stuck.wait_for(1)

    await asyncio.wait_for(consumer.cancel(grace=0.05), WAIT)

    assert await depth(names.work) == 1
    retry = Inbox()
    await bus.consume(names.work, retry)
    [delivery] = await retry.wait_for(1)
    assert delivery.redelivered


# -- lifecycle -------------------------------------------------------------------------------


async def test_start_is_idempotent(bus: Bus, names: Names, depth: Depth) -> None:
    """Starting twice redeclares nothing and keeps stored messages."""
    await bus.publish(names.direct, "work", message(1))

    await bus.start()

    assert bus.is_ready
    assert await depth(names.work) == 1


async def test_publish_after_close_raises_bus_error(bus: Bus, names: Names) -> None:
    """A closed bus refuses work with a retryable error, and closing again is harmless."""
    await bus.close()
    await bus.close()

    assert not bus.is_ready
    with pytest.raises(BusError):
        await bus.publish(names.direct, "work", message(1))


async def test_consume_from_undeclared_queue_raises_topology_error(bus: Bus, names: Names) -> None:
    """Consuming a queue the topology does not declare is a wiring bug."""
    with pytest.raises(TopologyError):
        await bus.consume(names.nowhere, Inbox())


async def test_inconsistent_topology_is_refused_at_start(
    implementation: BusImplementation, names: Names
) -> None:
    """A binding to an exchange nobody declares fails at start, not at the first publish."""
    broken = Topology(queues=(QueueSpec(names.work, bindings=(Binding(names.nowhere, "x"),)),))
    bus = implementation.create(broken)

    with pytest.raises(TopologyError):
        await bus.start()
    await bus.close()


# -- delayed retries -------------------------------------------------------------------------


class Attempts:
    """A handler that records (attempt, loop time) per message and fails as told."""

    def __init__(self, fail: Callable[[Delivery], Exception | None]) -> None:
        self.seen: dict[str, list[tuple[int, float]]] = {}
        self.done: list[str] = []
        self._fail = fail
        self._changed = asyncio.Condition()

    async def __call__(self, delivery: Delivery) -> None:
        message_id = delivery.message.message_id
        now = asyncio.get_running_loop().time()
        error = self._fail(delivery)
        async with self._changed:
            self.seen.setdefault(message_id, []).append((attempt_of(delivery.message), now))
            if error is None:
                self.done.append(message_id)
            self._changed.notify_all()
        if error is not None:
            raise error

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async def satisfied() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(satisfied(), WAIT)


async def test_retryable_failure_is_delivered_again_after_the_delay(bus: Bus, names: Names) -> None:
    """A transient error gets the message back later, one attempt higher, where it came from."""
    received: list[Delivery] = []

    def fail_first(delivery: Delivery) -> Exception | None:
        received.append(delivery)
        return Unavailable("store is down") if attempt_of(delivery.message) == 1 else None

    handler = Attempts(fail_first)
    await bus.consume(names.retrying, handler)
    await bus.publish(names.direct, "retrying", message(1))
    await handler.wait_until(lambda: handler.done == ["m-1"])

    [(first, started), (second, retried)] = handler.seen["m-1"]
    assert (first, second) == (1, 2)
    assert retried - started >= RETRY_DELAYS[0] - CLOCK_SLACK
    again = received[1]
    assert (again.exchange, again.routing_key) == (names.direct, "retrying")
    assert again.message.body == message(1).body
    assert again.redelivered is False  # a retry is a new delivery; x-attempt counts them


async def test_exhausted_retries_dead_letter_with_the_reason(bus: Bus, names: Names) -> None:
    """After max_attempts, growing delays apart, the message goes to .dead saying why and when."""
    handler = Attempts(lambda d: RetryLater("upstream still down"))
    dead = Inbox()
    await bus.consume(names.retrying, handler)
    await bus.consume(names.retrying + ".dead", dead)
    await bus.publish(names.direct, "retrying", message(1))

    [delivery] = await dead.wait_for(1)
    attempts = handler.seen["m-1"]
    assert [n for n, _ in attempts] == [1, 2, 3]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    assert all(gap >= delay - CLOCK_SLACK for gap, delay in zip(gaps, RETRY_DELAYS, strict=True))
    headers = delivery.message.headers
    assert headers["x-death-reason"] == "retries_exhausted"
    assert headers["x-death-queue"] == names.retrying
    assert (headers["x-exception-type"], headers["x-exception-message"]) == (
        "RetryLater",
        "upstream still down",
    )
    assert headers["x-attempts"] == RETRY_ATTEMPTS
    first = datetime.fromisoformat(str(headers["x-first-failure-at"]))
    last = datetime.fromisoformat(str(headers["x-last-failure-at"]))
    assert (first.utcoffset(), last.utcoffset()) == (timedelta(0), timedelta(0))
    assert (last - first).total_seconds() >= sum(RETRY_DELAYS) - 2 * CLOCK_SLACK


async def test_non_retryable_failure_goes_straight_to_dead(bus: Bus, names: Names) -> None:
    """A permanent error (e.g. an invalid payload) is never retried, even on a retry queue."""
    handler = Attempts(lambda d: InvalidRequest("payload does not validate"))
    dead = Inbox()
    await bus.consume(names.retrying, handler)
    await bus.consume(names.retrying + ".dead", dead)
    await bus.publish(names.direct, "retrying", message(1))

    [delivery] = await dead.wait_for(1)
    headers = delivery.message.headers
    assert (headers["x-death-reason"], headers["x-attempts"]) == ("handler_failed", 1)
    assert headers["x-exception-type"] == "InvalidRequest"
    assert [n for n, _ in handler.seen["m-1"]] == [1]


async def test_retrying_message_does_not_block_the_ones_behind_it(bus: Bus, names: Names) -> None:
    """While one message waits out its delay, the queue keeps delivering the others."""
    handler = Attempts(
        lambda d: (
            RetryLater() if d.message.message_id == "m-1" and attempt_of(d.message) == 1 else None
        )
    )
    await bus.consume(names.retrying, handler, prefetch=1)
    for n in (1, 2, 3):
        await bus.publish(names.direct, "retrying", message(n))

    await handler.wait_until(lambda: len(handler.done) == 3)
    assert handler.done == ["m-2", "m-3", "m-1"]


# -- RPC -------------------------------------------------------------------------------------


async def echo(request: Message) -> bytes:
    return b"echo:" + request.body


async def test_rpc_call_returns_the_reply_of_a_server(bus: Bus, names: Names) -> None:
    """Request/reply: the caller gets the server's answer, tagged with its correlation id."""
    await bus.serve(names.rpc, echo)

    reply = await bus.call(names.rpc, b'{"kind": "suite"}', timeout=WAIT)

    assert reply.body == b'echo:{"kind": "suite"}'
    assert reply.type == "rpc.reply"
    assert reply.correlation_id


async def test_rpc_call_without_a_server_raises_rpc_timeout(bus: Bus, names: Names) -> None:
    """Nobody serving the queue is a clear, typed, retryable error after the timeout."""
    with pytest.raises(RpcTimeout) as raised:
        await bus.call(names.rpc, b"{}", timeout=0.2)

    assert raised.value.retryable


async def test_rpc_call_to_a_server_that_never_answers_raises_rpc_timeout(
    bus: Bus, names: Names
) -> None:
    """A stuck server costs the caller its timeout, not more."""
    started = asyncio.Event()

    async def stuck(request: Message) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return b""

    await bus.serve(names.rpc, stuck)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    with pytest.raises(RpcTimeout):
        await bus.call(names.rpc, b"{}", timeout=0.3)

    assert started.is_set()
    assert loop.time() - begun < WAIT


async def test_rpc_call_to_an_undeclared_queue_raises_unroutable(bus: Bus, names: Names) -> None:
    """A typo in the RPC queue fails at once instead of waiting out the timeout."""
    with pytest.raises(Unroutable):
        await bus.call(names.nowhere, b"{}", timeout=WAIT)


async def test_rpc_handler_error_becomes_an_error_reply(bus: Bus, names: Names) -> None:
    """The caller learns of a failure at once, as {"error": {code, message}}, not by timeout."""

    async def failing(request: Message) -> bytes:
        if request.body == b"typed":
            raise NotFound("no such corp")
        raise ValueError("internal detail")

    await bus.serve(names.rpc, failing)
    typed = await bus.call(names.rpc, b"typed", timeout=WAIT)
    opaque = await bus.call(names.rpc, b"other", timeout=WAIT)

    assert typed.type == "rpc.error"
    assert json.loads(typed.body) == {"error": {"code": "not_found", "message": "no such corp"}}
    assert json.loads(opaque.body)["error"]["code"] == "internal_error"
    assert b"internal detail" not in opaque.body


async def test_rpc_competing_servers_answer_every_call_with_its_own_reply(
    bus: Bus, names: Names
) -> None:
    """Servers scale as competing consumers, and correlation keeps each reply with its call."""
    served: dict[str, int] = {"a": 0, "b": 0}

    def server(name: str) -> Callable[[Message], Awaitable[bytes]]:
        async def handle(request: Message) -> bytes:
            served[name] += 1
            await asyncio.sleep(0)  # let the other server take requests too
            return b"reply-to-" + request.body

        return handle

    await bus.serve(names.rpc, server("a"), prefetch=5)
    await bus.serve(names.rpc, server("b"), prefetch=5)
    bodies = [b"%d" % n for n in range(50)]
    replies = await asyncio.gather(*(bus.call(names.rpc, body, timeout=WAIT) for body in bodies))

    assert [reply.body for reply in replies] == [b"reply-to-" + body for body in bodies]
    assert served["a"] > 0
    assert served["b"] > 0
    assert served["a"] + served["b"] == 50


async def test_rpc_late_reply_after_timeout_is_dropped_quietly(bus: Bus, names: Names) -> None:
    """A reply that arrives after its caller gave up is discarded, and never answers another."""
    release, replied = asyncio.Event(), asyncio.Event()

    async def slow_first(request: Message) -> bytes:
        if request.body == b"slow":
            await release.wait()
            replied.set()
        return b"answer-" + request.body

    await bus.serve(names.rpc, slow_first, prefetch=2)
    with pytest.raises(RpcTimeout):
        await bus.call(names.rpc, b"slow", timeout=0.1)
    release.set()
    await asyncio.wait_for(replied.wait(), WAIT)

    reply = await bus.call(names.rpc, b"fast", timeout=WAIT)

    assert reply.body == b"answer-fast"


async def test_dead_letter_counts_read_what_waits_in_each_dead_queue(
    bus: Bus, names: Names
) -> None:
    """``dead_letter_counts`` names every queue with a ``.dead`` at 0, then counts what waits in
    it, on the broker itself (so it is the same whoever dead-lettered), without consuming."""
    counts = await bus.dead_letter_counts()
    assert counts[names.work] == 0
    assert names.rpc not in counts
    assert names.work + ".dead" not in counts

    async def explode(delivery: Delivery) -> None:
        raise ValueError("cannot parse payload")

    await bus.consume(names.work, explode)
    for n in (1, 2):
        await bus.publish(names.direct, "work", message(n))
    deadline = asyncio.get_running_loop().time() + 10
    while (await bus.dead_letter_counts())[names.work] < 2:
        assert asyncio.get_running_loop().time() < deadline, "never dead-lettered"
        await asyncio.sleep(0.05)
    assert (await bus.dead_letter_counts())[names.work] == 2
