"""The in-process bus: the ``Bus`` contract in one asyncio event loop, with RabbitMQ's semantics.

Used by the all-in-one process and by tests. Queues push messages to their consumers as soon
as a consumer has room under its prefetch (no polling), each handler runs in its own task,
and unsettled messages go back to the head of the queue when their consumer stops.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal

import structlog

from shared.bus.abc import (
    AlreadySettled,
    BusError,
    Consumer,
    Handler,
    HeaderValue,
    Message,
    PublishRejected,
    TopologyError,
    Unroutable,
)
from shared.bus.routing import match_words, split_words, validate_routing_key
from shared.bus.topology import DEFAULT_EXCHANGE, ExchangeSpec, QueueSpec, Topology
from shared.errors import InvalidRequest, ServiceError

log = structlog.get_logger(__name__)

_ROUTE_CACHE_SIZE = 4096  # routing keys are event types: few, but some come from outside
_HEADER_TEXT_LIMIT = 500  # an exception message in a dead-letter header, truncated
_CANCEL_WAIT = 1.0  # how long a cancelled handler may take to unwind before we give up on it

_Outcome = Literal["acked", "nacked", "dead_lettered", "requeued"]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A message in a queue. Immutable, so one instance is shared by every queue it reaches."""

    message: Message
    exchange: str
    routing_key: str
    redelivered: bool = False


class _Queue:
    """Ready messages in order, plus the consumers they are pushed to in turn."""

    def __init__(self, spec: QueueSpec, dead: _Queue | None) -> None:
        self.spec = spec
        self.name = spec.name
        self.dead = dead
        self.ready: deque[_Entry] = deque()
        self.unacked = 0
        self.consumers: deque[_Consumer] = deque()

    @property
    def is_full(self) -> bool:
        # Like RabbitMQ's max-length, only ready messages count, not unacknowledged ones.
        limit = self.spec.max_length
        if limit is None or self.spec.overflow == "drop-head":
            return False
        return len(self.ready) >= limit

    def put(self, entry: _Entry) -> None:
        self.ready.append(entry)
        limit = self.spec.max_length
        if limit is not None and len(self.ready) > limit:  # only reached with drop-head
            self.ready.popleft()
        self.dispatch()

    def requeue(self, entries: Iterable[_Entry]) -> None:
        """Put entries back at the head, in their original order, marked redelivered."""
        for entry in reversed(list(entries)):
            self.ready.appendleft(replace(entry, redelivered=True))
        self.dispatch()

    def dead_letter(self, entry: _Entry, headers: dict[str, HeaderValue]) -> None:
        if self.dead is None:
            # RabbitMQ discards a rejected message when the queue has no dead-letter exchange.
            log.warning(
                "message_discarded",
                queue=self.name,
                message_id=entry.message.message_id,
                reason=headers.get("x-death-reason"),
            )
            return
        message = entry.message
        message = replace(message, headers={**message.headers, **headers})
        # The dead-letter queue has no length limit: a poison message must never be lost.
        self.dead.put(_Entry(message, entry.exchange, entry.routing_key))

    def dispatch(self) -> None:
        """Hand ready messages to consumers with room, round-robin, until either runs out."""
        consumers = self.consumers
        while self.ready and consumers:
            for _ in range(len(consumers)):
                consumer = consumers[0]
                consumers.rotate(-1)
                if consumer.has_capacity:
                    break
            else:
                return
            consumer.deliver(self.ready.popleft())


class _Exchange:
    """An exchange and its bindings, resolved to queue objects."""

    def __init__(self, spec: ExchangeSpec) -> None:
        self.spec = spec
        self.bindings: list[tuple[str, tuple[str, ...], _Queue]] = []

    def bind(self, routing_key: str, queue: _Queue) -> None:
        self.bindings.append((routing_key, split_words(routing_key), queue))

    def route(self, routing_key: str) -> tuple[_Queue, ...]:
        kind = self.spec.kind
        if kind == "fanout":
            matched = [queue for _, _, queue in self.bindings]
        elif kind == "direct":
            matched = [queue for key, _, queue in self.bindings if key == routing_key]
        else:
            words = split_words(routing_key)
            matched = [queue for _, pattern, queue in self.bindings if match_words(pattern, words)]
        # A queue bound twice (e.g. by "a.*" and "*.b") still gets one copy, as in RabbitMQ.
        return tuple(dict.fromkeys(matched))


class _Delivery:
    """One delivery of a message to one consumer; settled exactly once."""

    __slots__ = ("_consumer", "_entry", "outcome", "tag", "task")

    def __init__(self, entry: _Entry, consumer: _Consumer, tag: int) -> None:
        self._entry = entry
        self._consumer = consumer
        self.tag = tag
        self.outcome: _Outcome | None = None
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        # Never the body: deliveries end up in tracebacks and log lines.
        return (
            f"<Delivery queue={self._consumer.queue_name!r} tag={self.tag} "
            f"message_id={self._entry.message.message_id!r} outcome={self.outcome}>"
        )

    @property
    def entry(self) -> _Entry:
        return self._entry

    @property
    def message(self) -> Message:
        return self._entry.message

    @property
    def exchange(self) -> str:
        return self._entry.exchange

    @property
    def routing_key(self) -> str:
        return self._entry.routing_key

    @property
    def redelivered(self) -> bool:
        return self._entry.redelivered

    @property
    def is_settled(self) -> bool:
        return self.outcome is not None

    async def ack(self) -> None:
        """Done with the message: remove it from the queue.

        Raises:
            AlreadySettled: the delivery was already settled.
        """
        self._consumer.settle(self, "acked")

    async def nack(self, *, requeue: bool) -> None:
        """Give the message back to the head of the queue (``requeue=True``, redelivered) or
        dead-letter it (``requeue=False``).

        Raises:
            AlreadySettled: the delivery was already settled.
        """
        if requeue:
            self._consumer.settle(self, "nacked")
        else:
            self._consumer.settle(self, "dead_lettered", _death_headers("rejected", self))

    def fail(self, exc: Exception) -> None:
        """Dead-letter the message because handling it raised ``exc``."""
        headers = _death_headers("handler_failed", self)
        headers["x-exception-type"] = type(exc).__name__
        headers["x-exception-message"] = str(exc)[:_HEADER_TEXT_LIMIT]
        self._consumer.settle(self, "dead_lettered", headers)

    def process(self) -> _Process:
        """Context manager: ack on normal exit, dead-letter on an exception (re-raised)."""
        return _Process(self)


def _death_headers(reason: str, delivery: _Delivery) -> dict[str, HeaderValue]:
    return {"x-death-reason": reason, "x-death-queue": delivery._consumer.queue_name}


class _Process:
    """``async with delivery.process():`` as in aio-pika, but a cancelled block leaves the
    delivery unsettled so that the stopping consumer requeues it instead of dead-lettering."""

    def __init__(self, delivery: _Delivery) -> None:
        self._delivery = delivery

    async def __aenter__(self) -> _Delivery:
        return self._delivery

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        delivery = self._delivery
        if delivery.is_settled:
            return
        if exc is None:
            await delivery.ack()
        elif isinstance(exc, Exception):
            delivery.fail(exc)


class _Consumer:
    """A subscription: runs one task per delivery, at most ``prefetch`` unsettled at once."""

    def __init__(
        self,
        queue: _Queue,
        handler: Handler,
        prefetch: int,
        tags: Iterable[int],
        on_stopped: Callable[[_Consumer], None],
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._tags = iter(tags)
        self._on_stopped = on_stopped
        self._unsettled: dict[int, _Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = True
        self._stopping: asyncio.Task[None] | None = None

    @property
    def queue_name(self) -> str:
        return self._queue.name

    @property
    def has_capacity(self) -> bool:
        return self._active and len(self._unsettled) < self._prefetch

    def deliver(self, entry: _Entry) -> None:
        delivery = _Delivery(entry, self, next(self._tags))
        self._unsettled[delivery.tag] = delivery
        self._queue.unacked += 1
        task = asyncio.get_running_loop().create_task(
            self._run(delivery), name=f"bus-handler:{self._queue.name}:{delivery.tag}"
        )
        delivery.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def settle(
        self,
        delivery: _Delivery,
        outcome: _Outcome,
        headers: dict[str, HeaderValue] | None = None,
    ) -> None:
        if delivery.outcome is not None:
            raise AlreadySettled(
                f"delivery {delivery.tag} of queue {self._queue.name!r} was already "
                f"{delivery.outcome.replace('_', '-')}"
            )
        delivery.outcome = outcome
        del self._unsettled[delivery.tag]
        queue = self._queue
        queue.unacked -= 1
        if outcome in ("nacked", "requeued"):
            queue.requeue([delivery.entry])
            return
        if outcome == "dead_lettered":
            queue.dead_letter(delivery.entry, headers or {})
        queue.dispatch()  # this consumer has room again

    async def _run(self, delivery: _Delivery) -> None:
        try:
            await self._handler(delivery)
        except asyncio.CancelledError:
            # Cancelled from outside while the consumer keeps running: hand the message back.
            # When the consumer is stopping, _stop requeues every unsettled delivery in order.
            if self._active and not delivery.is_settled:
                self.settle(delivery, "requeued")
            raise
        except Exception as exc:  # any handler failure dead-letters, as the contract says
            self._log_failure(delivery, exc)
            if not delivery.is_settled:
                delivery.fail(exc)
        else:
            if not delivery.is_settled:
                self.settle(delivery, "acked")

    def _log_failure(self, delivery: _Delivery, exc: Exception) -> None:
        # No traceback and no exception message: either can carry the body (pydantic puts the
        # input in its errors). The message is in the dead-letter headers; point at the frame.
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        error_at = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else None
        log.error(
            "consumer_handler_failed",
            queue=self._queue.name,
            message_id=delivery.message.message_id,
            correlation_id=delivery.message.correlation_id,
            routing_key=delivery.routing_key,
            redelivered=delivery.redelivered,
            error_type=type(exc).__name__,
            error_code=exc.code if isinstance(exc, ServiceError) else None,
            error_at=error_at,
            already_settled=delivery.is_settled,
        )

    async def cancel(self, *, grace: float = 10.0) -> None:
        """Stop taking messages; let in-flight handlers finish for ``grace`` seconds, then
        cancel them and requeue what is still unsettled (marked redelivered)."""
        if self._stopping is None:
            # Stop taking messages right now, not when the stopping task first runs.
            self._active = False
            if self in self._queue.consumers:
                self._queue.consumers.remove(self)
            self._stopping = asyncio.get_running_loop().create_task(
                self._stop(grace, asyncio.current_task()), name=f"bus-cancel:{self._queue.name}"
            )
        # Shielded: a caller cancelled while waiting must not leave messages half requeued.
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float, caller: asyncio.Task[object] | None) -> None:
        # A handler may cancel its own consumer; it must not wait for, or cancel, itself.
        others = {task for task in self._tasks if task is not caller}
        if others:
            _, pending = await asyncio.wait(others, timeout=max(grace, 0.0))
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=_CANCEL_WAIT)
                if stuck:
                    log.warning(
                        "consumer_handler_ignored_cancel", queue=self.queue_name, count=len(stuck)
                    )
        leftover = [d for d in self._unsettled.values() if caller is None or d.task is not caller]
        for delivery in leftover:
            delivery.outcome = "requeued"
            del self._unsettled[delivery.tag]
        self._queue.unacked -= len(leftover)
        self._queue.requeue(d.entry for d in leftover)
        self._on_stopped(self)
        log.info("consumer_cancelled", queue=self.queue_name, requeued=len(leftover))


class InProcessBus:
    """The ``Bus`` for one process and one event loop.

    Args:
        topology: what to declare at ``start()``.
        close_grace: seconds ``close()`` lets in-flight handlers finish.
    """

    def __init__(self, topology: Topology, *, close_grace: float = 2.0) -> None:
        self._topology = topology
        self._close_grace = close_grace
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, _Queue] = {}
        self._routes: dict[tuple[str, str], tuple[_Queue, ...]] = {}
        self._consumers: set[_Consumer] = set()
        self._tags = itertools.count(1)
        self._started = False
        self._closing: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def is_ready(self) -> bool:
        """True between ``start()`` and ``close()``."""
        return self._started and not self._closed

    async def start(self) -> None:
        """Declare the topology; a second call does nothing.

        Raises:
            TopologyError: the topology is inconsistent.
            BusError: the bus was closed.
        """
        if self._closing is not None:
            raise BusError("the in-process bus is closed and cannot be restarted")
        if self._started:
            return
        self._topology.validate()
        self._declare(self._topology)
        self._started = True
        log.info(
            "bus_started",
            engine="inprocess",
            exchanges=len(self._exchanges),
            queues=len(self._queues),
        )

    def _declare(self, topology: Topology) -> None:
        self._exchanges = {spec.name: _Exchange(spec) for spec in topology.exchanges}
        for spec in topology.queues:
            dead = None
            if spec.dead_letter_queue is not None:
                dead_spec = QueueSpec(
                    spec.dead_letter_queue, durable=spec.durable, quorum=spec.quorum
                )
                dead = self._queues[dead_spec.name] = _Queue(dead_spec, None)
            queue = self._queues[spec.name] = _Queue(spec, dead)
            for binding in spec.bindings:
                self._exchanges[binding.exchange].bind(binding.routing_key, queue)

    async def close(self) -> None:
        """Cancel every consumer (requeueing what they had not settled), then refuse
        publishing. Idempotent, and safe before ``start()``."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        # Consumers first: a handler finishing within the grace period may still publish.
        consumers = list(self._consumers)
        await asyncio.gather(*(c.cancel(grace=self._close_grace) for c in consumers))
        self._closed = True
        if self._started:
            log.info("bus_closed", engine="inprocess", consumers=len(consumers))

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: Message,
        *,
        timeout: float = 5.0,
    ) -> None:
        """Store ``message`` in every queue it routes to, or in none.

        Storing is immediate here, so ``timeout`` never fires; it is accepted for the contract.

        Raises:
            PublishRejected: a target queue is at its ``max_length``; nothing was stored.
            Unroutable: no queue is bound, even through alternate exchanges.
            TopologyError: ``exchange`` is not declared.
            InvalidRoutingKey: the routing key is longer than 255 bytes.
            BusError: the bus is not started or is closed.
        """
        if not self._started or self._closed:
            raise BusError("the in-process bus is closed" if self._closed else "bus not started")
        targets = self._routes.get((exchange, routing_key))
        if targets is None:
            targets = self._resolve(exchange, routing_key)
        if not targets:
            raise Unroutable(f"no queue is bound on {exchange!r} for {routing_key!r}")
        for queue in targets:
            if queue.is_full:
                raise PublishRejected(f"queue {queue.name!r} is full")
        if message.timestamp is None:
            message = replace(message, timestamp=datetime.now(UTC))
        entry = _Entry(message, exchange, routing_key)
        for queue in targets:
            queue.put(entry)

    def _resolve(self, exchange: str, routing_key: str) -> tuple[_Queue, ...]:
        validate_routing_key(routing_key)
        if exchange == DEFAULT_EXCHANGE:
            queue = self._queues.get(routing_key)
            targets: tuple[_Queue, ...] = (queue,) if queue is not None else ()
        elif exchange not in self._exchanges:
            raise TopologyError(f"exchange {exchange!r} is not declared")
        else:
            targets = ()
            seen: set[str] = set()
            name: str | None = exchange
            # Follow alternate exchanges (as RabbitMQ does, guarding against cycles) until
            # something routes the message.
            while name is not None and name not in seen and not targets:
                seen.add(name)
                current = self._exchanges[name]
                targets = current.route(routing_key)
                name = current.spec.alternate_exchange
        if len(self._routes) >= _ROUTE_CACHE_SIZE:
            self._routes.clear()
        self._routes[(exchange, routing_key)] = targets
        return targets

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        """Deliver messages of ``queue`` to ``handler``, at most ``prefetch`` unsettled at once.

        Consumers of one queue compete: each message goes to one of them, in turn. A handler
        that returns without settling gets its delivery acked; one that raises gets it
        dead-lettered with the exception type and message in the headers.

        Raises:
            TopologyError: ``queue`` is not declared.
            InvalidRequest: ``prefetch`` is below 1.
            BusError: the bus is not started or is closing.
        """
        if not self._started or self._closing is not None:
            raise BusError("the in-process bus is not running")
        if prefetch < 1:
            raise InvalidRequest("prefetch must be at least 1")
        target = self._queue(queue)
        consumer = _Consumer(target, handler, prefetch, self._tags, self._consumers.discard)
        self._consumers.add(consumer)
        target.consumers.append(consumer)
        target.dispatch()
        return consumer

    def queue_depth(self, name: str) -> int:
        """Ready messages in queue ``name`` (not those delivered and unsettled)."""
        return len(self._queue(name).ready)

    def unacked(self, name: str) -> int:
        """Messages of queue ``name`` delivered to a consumer and not yet settled."""
        return self._queue(name).unacked

    def _queue(self, name: str) -> _Queue:
        if not self._started:
            raise BusError("bus not started")
        queue = self._queues.get(name)
        if queue is None:
            raise TopologyError(f"queue {name!r} is not declared")
        return queue
