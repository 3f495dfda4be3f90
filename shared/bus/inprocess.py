"""The in-process bus: the ``Bus`` contract in one asyncio event loop, with RabbitMQ's semantics.

Used by the all-in-one process and by tests. Queues push messages to their consumers as soon
as a consumer has room under its prefetch (no polling), each handler runs in its own task,
and unsettled messages go back to the head of the queue when their consumer stops. Queues
and consumers live in ``_inprocess_queue``; delayed retries are timers (``_inprocess_retry``);
RPC replies are matched to their callers here, by ``correlation_id``, without a reply queue.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

import structlog
from prometheus_client import CollectorRegistry

from shared.bus._inprocess_queue import Entry, MemoryConsumer, MemoryQueue
from shared.bus._inprocess_retry import RetryTimers
from shared.bus._rpc import PendingCalls, server_handler
from shared.bus.abc import (
    BusError,
    Consumer,
    Handler,
    Message,
    PublishRejected,
    RpcHandler,
    TopologyError,
    Unroutable,
)
from shared.bus.routing import match_words, split_words, validate_routing_key
from shared.bus.topology import (
    DEFAULT_EXCHANGE,
    UNROUTED_QUEUE,
    ExchangeSpec,
    QueueSpec,
    Topology,
)
from shared.errors import InvalidRequest
from shared.metrics import dead_letter_counter

log = structlog.get_logger(__name__)

_ROUTE_CACHE_SIZE = 4096  # routing keys are event types: few, but some come from outside
INPROCESS_QUEUE_LIMITS: Mapping[str, int] = MappingProxyType({UNROUTED_QUEUE: 1000})
"""Lower bounds on named queues in-process. On a broker the unrouted queue holds the newest
10,000 events for an operator to inspect; in a process nobody can read it, and 10,000 events
of ~1.8 KB were the largest part of a busy gateway's memory."""


class _Exchange:
    """An exchange and its bindings, resolved to queue objects."""

    def __init__(self, spec: ExchangeSpec) -> None:
        self.spec = spec
        self.bindings: list[tuple[str, tuple[str, ...], MemoryQueue]] = []

    def bind(self, routing_key: str, queue: MemoryQueue) -> None:
        self.bindings.append((routing_key, split_words(routing_key), queue))

    def route(self, routing_key: str) -> tuple[MemoryQueue, ...]:
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


class InProcessBus:
    """The ``Bus`` for one process and one event loop.

    Args:
        topology: what to declare at ``start()``.
        close_grace: seconds ``close()`` lets in-flight handlers finish.
        registry: where dead letters are counted (``wecom_bus_dead_letters_total``); a
            registry of the bus's own when not given.
    """

    def __init__(
        self,
        topology: Topology,
        *,
        close_grace: float = 2.0,
        queue_limits: Mapping[str, int] = INPROCESS_QUEUE_LIMITS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._topology = topology
        self._dead_letters = dead_letter_counter(
            registry or CollectorRegistry(),
            (spec.name for spec in topology.queues if spec.dead_letter_queue is not None),
        )
        self._close_grace = close_grace
        self._queue_limits = queue_limits
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, MemoryQueue] = {}
        self._routes: dict[tuple[str, str], tuple[MemoryQueue, ...]] = {}
        self._consumers: set[MemoryConsumer] = set()
        self._tags = itertools.count(1)
        self._timers = RetryTimers()
        # Replies to this bus's calls: published to the default exchange under this name,
        # which no queue can take (queue names never start with "amq."), and matched here.
        self._reply_to = f"amq.inprocess.reply.{id(self):x}"
        self._pending = PendingCalls()
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
                # A dead-letter queue's own consumer gets neither retries nor dead letters.
                dead_spec = QueueSpec(
                    spec.dead_letter_queue,
                    durable=spec.durable,
                    quorum=spec.quorum,
                    dead_letter=False,
                    max_attempts=1,
                )
                dead = self._queues[dead_spec.name] = MemoryQueue(dead_spec, None, self._timers)
            queue = self._queues[spec.name] = MemoryQueue(self._capped(spec), dead, self._timers)
            for binding in spec.bindings:
                self._exchanges[binding.exchange].bind(binding.routing_key, queue)

    def _capped(self, spec: QueueSpec) -> QueueSpec:
        """``spec`` with the in-process bound of its name, where that is lower."""
        limit = self._queue_limits.get(spec.name)
        if limit is None or (spec.max_length is not None and spec.max_length <= limit):
            return spec
        return replace(spec, max_length=limit)

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
        self._timers.cancel_all()
        self._pending.fail_all(BusError("the in-process bus closed before the reply came"))
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
        if exchange == DEFAULT_EXCHANGE and routing_key == self._reply_to:
            self._pending.resolve(message)
            return
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
        entry = Entry(message, exchange, routing_key)
        for queue in targets:
            queue.put(entry)

    def _resolve(self, exchange: str, routing_key: str) -> tuple[MemoryQueue, ...]:
        validate_routing_key(routing_key)
        if exchange == DEFAULT_EXCHANGE:
            queue = self._queues.get(routing_key)
            targets: tuple[MemoryQueue, ...] = (queue,) if queue is not None else ()
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
        dead_letters = None
        if target.spec.dead_letter_queue is not None:
            dead_letters = self._dead_letters.labels(queue)
        consumer = MemoryConsumer(
            target, handler, prefetch, self._tags, self._consumers.discard, dead_letters
        )
        self._consumers.add(consumer)
        target.consumers.append(consumer)
        target.dispatch()
        return consumer

    async def call(self, queue: str, request: bytes | Message, *, timeout: float) -> Message:
        """Send ``request`` to the servers of ``queue`` and return their reply.

        Raises:
            RpcTimeout: no reply within ``timeout`` seconds.
            Unroutable: ``queue`` is not declared.
            BusError: the bus is not started, or closed while waiting.
        """
        deadline = asyncio.get_running_loop().time() + timeout

        async def send(sent: Message) -> None:
            await self.publish(DEFAULT_EXCHANGE, queue, sent)

        return await self._pending.call(request, self._reply_to, send, queue, deadline)

    async def serve(self, queue: str, handler: RpcHandler, *, prefetch: int = 16) -> Consumer:
        """Answer the requests of ``queue`` with ``handler``; servers of one queue compete, and
        a handler's error becomes an error reply.

        Raises:
            TopologyError: ``queue`` is not declared.
            BusError: the bus is not running.
        """
        return await self.consume(
            queue, server_handler(queue, handler, self.publish), prefetch=prefetch
        )

    async def dead_letter_counts(self) -> dict[str, int]:
        """Queue name → messages waiting in its dead-letter queue."""
        if not self._started:
            raise BusError("bus not started")
        return {
            name: len(self._queues[queue.spec.dead_letter_queue].ready)
            for name, queue in self._queues.items()
            if queue.spec.dead_letter_queue is not None
            and queue.spec.dead_letter_queue in self._queues
        }

    def queue_depth(self, name: str) -> int:
        """Ready messages in queue ``name`` (not those delivered and unsettled)."""
        return len(self._queue(name).ready)

    def unacked(self, name: str) -> int:
        """Messages of queue ``name`` delivered to a consumer and not yet settled."""
        return self._queue(name).unacked

    def _queue(self, name: str) -> MemoryQueue:
        if not self._started:
            raise BusError("bus not started")
        queue = self._queues.get(name)
        if queue is None:
            raise TopologyError(f"queue {name!r} is not declared")
        return queue
