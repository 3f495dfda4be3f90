"""Queues, deliveries and consumers of the in-process bus (``shared.bus.inprocess``).

A queue pushes ready messages to its consumers as soon as one has room under its prefetch; a
consumer runs one task per delivery and settles each exactly once: ack, requeue at the head,
a delayed retry, or a dead letter.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import NamedTuple

import structlog
from prometheus_client import Counter

from shared.bus._delivery import Outcome, SettledOnce
from shared.bus._handlers import log_handler_failure, stop_handler_tasks
from shared.bus._inprocess_retry import RetryTimers
from shared.bus._retry import FailurePlan
from shared.bus.abc import Handler, HeaderValue, Message
from shared.bus.topology import QueueSpec

log = structlog.get_logger(__name__)


class Entry(NamedTuple):
    """A message in a queue. Immutable, so one instance is shared by every queue it reaches.

    A named tuple rather than a frozen dataclass: one is built per publish, and a frozen
    dataclass's ``__init__`` pays an ``object.__setattr__`` call per field.
    """

    message: Message
    exchange: str
    routing_key: str
    redelivered: bool = False


class MemoryQueue:
    """Ready messages in order, plus the consumers they are pushed to in turn."""

    def __init__(self, spec: QueueSpec, dead: MemoryQueue | None, timers: RetryTimers) -> None:
        self.spec = spec
        self.timers = timers
        self.name = spec.name
        self.dead = dead
        self.ready: deque[Entry] = deque()
        self.unacked = 0
        self.consumers: deque[MemoryConsumer] = deque()

    @property
    def is_full(self) -> bool:
        # Like RabbitMQ's max-length, only ready messages count, not unacknowledged ones.
        limit = self.spec.max_length
        if limit is None or self.spec.overflow == "drop-head":
            return False
        return len(self.ready) >= limit

    def put(self, entry: Entry) -> None:
        self.ready.append(entry)
        limit = self.spec.max_length
        if limit is not None and len(self.ready) > limit:  # only reached with drop-head
            self.ready.popleft()
        self.dispatch()

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Put entries back at the head, in their original order, marked redelivered."""
        for entry in reversed(list(entries)):
            self.ready.appendleft(entry._replace(redelivered=True))
        self.dispatch()

    def dead_letter(self, entry: Entry, headers: dict[str, HeaderValue]) -> None:
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
        self.dead.put(Entry(message, entry.exchange, entry.routing_key))

    def retry(self, entry: Entry, plan: FailurePlan) -> None:
        """Put ``entry`` back at the tail after the plan's delay, with the retry headers. Like
        RabbitMQ's retry queues, the delayed copy ignores ``max_length``: it was accepted once.
        """
        again = Entry(
            replace(entry.message, headers=plan.headers), entry.exchange, entry.routing_key
        )
        self.timers.schedule(plan.delay or 0.0, lambda: self.put(again))

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


class MemoryDelivery(SettledOnce["MemoryConsumer"]):
    """One delivery of a message to one in-process consumer; settled exactly once."""

    __slots__ = ("_entry",)

    def __init__(self, entry: Entry, consumer: MemoryConsumer, tag: int) -> None:
        super().__init__(consumer, tag)
        self._entry = entry

    @property
    def entry(self) -> Entry:
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

    async def _settle(
        self,
        outcome: Outcome,
        headers: dict[str, HeaderValue] | None = None,
        *,
        plan: FailurePlan | None = None,
    ) -> None:
        self._consumer.settle(self, outcome, headers, plan=plan)


class MemoryConsumer:
    """A subscription: runs one task per delivery, at most ``prefetch`` unsettled at once."""

    def __init__(
        self,
        queue: MemoryQueue,
        handler: Handler,
        prefetch: int,
        tags: Iterable[int],
        on_stopped: Callable[[MemoryConsumer], None],
        dead_letters: Counter | None = None,
    ) -> None:
        self._queue = queue
        self.dead_letters = dead_letters
        self._handler = handler
        self._prefetch = prefetch
        self._tags = iter(tags)
        self._on_stopped = on_stopped
        self._unsettled: dict[int, MemoryDelivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = True
        self._stopping: asyncio.Task[None] | None = None

    @property
    def queue_name(self) -> str:
        return self._queue.name

    @property
    def spec(self) -> QueueSpec:
        return self._queue.spec

    @property
    def has_capacity(self) -> bool:
        return self._active and len(self._unsettled) < self._prefetch

    def deliver(self, entry: Entry) -> None:
        delivery = MemoryDelivery(entry, self, next(self._tags))
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
        delivery: MemoryDelivery,
        outcome: Outcome,
        headers: dict[str, HeaderValue] | None = None,
        *,
        plan: FailurePlan | None = None,
    ) -> None:
        delivery.mark_settled(outcome)
        del self._unsettled[delivery.tag]
        queue = self._queue
        queue.unacked -= 1
        if outcome in ("nacked", "requeued"):
            queue.requeue([delivery.entry])
            return
        if outcome == "dead_lettered":
            queue.dead_letter(delivery.entry, headers or {})
        elif outcome == "retried" and plan is not None:
            queue.retry(delivery.entry, plan)
        queue.dispatch()  # this consumer has room again

    async def _run(self, delivery: MemoryDelivery) -> None:
        try:
            await self._handler(delivery)
        except asyncio.CancelledError:
            # Cancelled from outside while the consumer keeps running: hand the message back.
            # When the consumer is stopping, _stop requeues every unsettled delivery in order.
            if self._active and not delivery.is_settled:
                self.settle(delivery, "requeued")
            raise
        except Exception as exc:  # any handler failure dead-letters, as the contract says
            log_handler_failure(self._queue.name, delivery, exc)
            if not delivery.is_settled:
                await delivery.fail(exc)
        else:
            if not delivery.is_settled:
                self.settle(delivery, "acked")

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
        await stop_handler_tasks(self._tasks, caller, grace, self.queue_name)
        leftover = [d for d in self._unsettled.values() if caller is None or d.task is not caller]
        for delivery in leftover:
            delivery.outcome = "requeued"
            del self._unsettled[delivery.tag]
        self._queue.unacked -= len(leftover)
        self._queue.requeue(d.entry for d in leftover)
        self._on_stopped(self)
        log.info("consumer_cancelled", queue=self.queue_name, requeued=len(leftover))
