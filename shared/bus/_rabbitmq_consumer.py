"""The consuming half of the RabbitMQ bus: deliveries (``_rabbitmq_delivery``) settled exactly
once, one task per handler, retry and dead-letter copies confirmed before the original is acked,
and a graceful cancel that requeues what its handlers did not finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from prometheus_client import Counter
from structlog.contextvars import bound_contextvars

from shared.bus._broker_errors import BROKER_AWAY
from shared.bus._delivery import Outcome
from shared.bus._handlers import log_handler_failure, stop_handler_tasks
from shared.bus._rabbitmq_delivery import RabbitDelivery
from shared.bus._retry import (
    FailurePlan,
)
from shared.bus.abc import BusError, Handler, HeaderValue, Message
from shared.bus.topology import QueueSpec

log = structlog.get_logger(__name__)

_BROKER_CALL_TIMEOUT = 5.0  # basic.cancel and channel.close during shutdown


# Publishes a copy of a message, with extra headers, to the dead-letter queue of ``queue``
# and returns once the broker confirmed it (provided by the bus, which owns the publisher).
DeadLetterPublisher = Callable[[str, Message, dict[str, HeaderValue]], Awaitable[None]]
# Publishes the retry copy of a message of queue ``spec`` into its retry queue ``level``, to
# expire after ``delay`` seconds, and returns once the broker confirmed it.
RetryPublisher = Callable[[QueueSpec, int, Message, float], Awaitable[None]]


class RabbitConsumer:
    """A subscription on its own channel: one task per delivery, ``prefetch`` unsettled at most
    (the broker enforces it through basic.qos)."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        spec: QueueSpec,
        handler: Handler,
        *,
        dead_letter: DeadLetterPublisher | None,
        retry: RetryPublisher | None,
        on_stopped: Callable[[RabbitConsumer], None],
        dead_letters: Counter | None = None,
    ) -> None:
        self._channel = channel
        self.dead_letters = dead_letters
        self._spec = spec
        self._retry = retry
        self._queue_name = spec.name
        self._handler = handler
        self._dead_letter = dead_letter
        self._on_stopped = on_stopped
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._next_tag = 0
        self._unsettled: dict[int, RabbitDelivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = True
        self._stopping: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def queue_name(self) -> str:
        return self._queue_name

    @property
    def spec(self) -> QueueSpec:
        return self._spec

    async def start(self, prefetch: int) -> None:
        """Set the prefetch and subscribe (manual acknowledgement)."""
        await self._channel.set_qos(prefetch_count=prefetch)
        # A passive declare (not a bare queue object) registers the queue with the robust
        # channel, which then re-subscribes this consumer after a reconnect.
        self._queue = await self._channel.declare_queue(self._queue_name, passive=True)
        self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        if not self._active:
            # Sent by the broker between our basic.cancel and its cancel-ok: hand it back.
            await self._requeue_quietly(incoming)
            return
        self._next_tag += 1
        delivery = RabbitDelivery(incoming, self, self._next_tag)
        self._unsettled[delivery.tag] = delivery
        task = asyncio.get_running_loop().create_task(
            self._run(delivery), name=f"bus-handler:{self._queue_name}:{delivery.tag}"
        )
        delivery.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(
        self,
        delivery: RabbitDelivery,
        outcome: Outcome,
        headers: dict[str, HeaderValue] | None = None,
        *,
        plan: FailurePlan | None = None,
    ) -> None:
        """Record ``outcome`` for ``delivery`` and tell the broker.

        Raises:
            AlreadySettled: the delivery was already settled.
            BusError: the broker could not be told (it will redeliver the message).
        """
        delivery.mark_settled(outcome)
        self._unsettled.pop(delivery.tag, None)
        # Shielded, as arq shields finish_job: a handler cancelled mid-settle must not leave
        # the dead-letter copy published and the original unacknowledged.
        settling = asyncio.ensure_future(self._tell_broker(delivery, outcome, headers or {}, plan))
        self._tasks.add(settling)
        settling.add_done_callback(self._tasks.discard)
        await asyncio.shield(settling)

    async def _tell_broker(
        self,
        delivery: RabbitDelivery,
        outcome: Outcome,
        headers: dict[str, HeaderValue],
        plan: FailurePlan | None,
    ) -> None:
        incoming = delivery.incoming
        try:
            if outcome == "acked":
                await incoming.ack()
            elif outcome in ("nacked", "requeued"):
                await incoming.nack(requeue=True)
            elif outcome == "retried" and plan is not None:
                await self._retry_or_requeue(delivery, plan)
            else:
                await self._dead_letter_or_reject(delivery, headers)
        except BROKER_AWAY as exc:
            raise BusError(
                f"could not settle delivery {delivery.tag} of queue {self._queue_name!r}: "
                f"{type(exc).__name__}"
            ) from exc

    async def _retry_or_requeue(self, delivery: RabbitDelivery, plan: FailurePlan) -> None:
        # As with dead letters: the retry copy is confirmed before the original is acked, so
        # a crash in between makes a duplicate (consumers de-duplicate on message_id), never
        # a loss. If the copy cannot be published, the message goes back to the queue at once:
        # an early retry beats losing it, and the attempt count it carries stays as it was.
        if self._retry is not None:
            copy = replace(delivery.message, headers=plan.headers)
            retry = self._retry(self._spec, plan.level, copy, plan.delay or 0.0)
            if await self._copied(delivery, retry, "retry_publish_failed"):
                return
        await delivery.incoming.nack(requeue=True)

    async def _dead_letter_or_reject(
        self, delivery: RabbitDelivery, headers: dict[str, HeaderValue]
    ) -> None:
        # RabbitMQ's own dead-lettering (nack without requeue, through the queue's
        # x-dead-letter-exchange) cannot add headers: it only appends its x-death table. To
        # say why, as the in-process bus does, we publish a copy carrying the reason headers
        # to the dead-letter queue, wait for its confirm, and only then ack the original. A
        # crash in between leaves the message in both places; consumers de-duplicate on
        # message_id, so that is a duplicate, never a loss. If the copy cannot be published,
        # the native route still takes the message (without our headers).
        if self._dead_letter is not None:
            dead_letter = self._dead_letter(self._queue_name, delivery.message, headers)
            if await self._copied(delivery, dead_letter, "dead_letter_publish_failed"):
                return
        else:
            # As in RabbitMQ: a queue without a dead-letter exchange drops a rejected message.
            log.warning(
                "message_discarded",
                queue=self._queue_name,
                message_id=delivery.message.message_id,
                reason=headers.get("x-death-reason"),
            )
        await delivery.incoming.nack(requeue=False)

    async def _copied(
        self, delivery: RabbitDelivery, publish: Awaitable[None], failed_event: str
    ) -> bool:
        """Publish a copy of ``delivery`` (retry or dead letter), then ack the original; False,
        and a warning ``failed_event``, if the copy was not confirmed (the caller falls back)."""
        try:
            await publish
        except BusError as exc:
            log.warning(
                failed_event,
                queue=self._queue_name,
                message_id=delivery.message.message_id,
                error_code=exc.code,
            )
            return False
        await delivery.incoming.ack()
        return True

    async def _run(self, delivery: RabbitDelivery) -> None:
        message = delivery.message
        with bound_contextvars(
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            routing_key=delivery.routing_key,
        ):
            try:
                await self._handler(delivery)
            except asyncio.CancelledError:
                # Cancelled from outside while the consumer keeps running: hand the message
                # back. When the consumer is stopping, _stop requeues every unsettled one.
                if self._active and not delivery.is_settled:
                    await delivery.settle_quietly("requeued")
                raise
            except Exception as exc:  # any handler failure dead-letters, as the contract says
                log_handler_failure(self._queue_name, delivery, exc)
                if not delivery.is_settled:
                    await delivery.settle_quietly("dead_lettered", exc)
            else:
                if not delivery.is_settled:
                    await delivery.settle_quietly("acked")

    async def _requeue_quietly(self, incoming: AbstractIncomingMessage) -> None:
        try:
            await incoming.nack(requeue=True)
        except BROKER_AWAY as exc:
            # The channel is closing anyway, and closing it requeues the message.
            log.info("consumer_requeue_skipped", queue=self._queue_name, error=type(exc).__name__)

    async def cancel(self, *, grace: float = 10.0) -> None:
        """Stop taking messages; let in-flight handlers finish for ``grace`` seconds, then
        cancel them, requeue what is still unsettled (marked redelivered) and close the
        channel."""
        if self._stopping is None:
            # Stop taking messages right now, not when the stopping task first runs.
            self._active = False
            self._stopping = asyncio.get_running_loop().create_task(
                self._stop(grace, asyncio.current_task()), name=f"bus-cancel:{self._queue_name}"
            )
        # Shielded: a caller cancelled while waiting must not leave messages half requeued.
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float, caller: asyncio.Task[object] | None) -> None:
        await self._basic_cancel()
        await stop_handler_tasks(self._tasks, caller, grace, self._queue_name)
        leftover = [d for d in self._unsettled.values() if caller is None or d.task is not caller]
        for delivery in leftover:
            delivery.outcome = "requeued"
            del self._unsettled[delivery.tag]
            await self._requeue_quietly(delivery.incoming)
        if caller is not None and caller in self._tasks:
            # A handler cancelling its own consumer settles its delivery after cancel()
            # returns; closing the channel now would requeue it behind its back.
            self._closer = asyncio.get_running_loop().create_task(self._close_after(caller))
        else:
            await self._close_channel()
        self._on_stopped(self)
        log.info("consumer_cancelled", queue=self._queue_name, requeued=len(leftover))

    async def _close_after(self, task: asyncio.Task[object]) -> None:
        await asyncio.wait({task})
        await self._close_channel()

    async def _basic_cancel(self) -> None:
        if self._queue is None or self._consumer_tag is None:
            return
        try:
            await self._queue.cancel(self._consumer_tag, timeout=_BROKER_CALL_TIMEOUT)
        except BROKER_AWAY as exc:
            # Closing the channel below ends the subscription as well.
            log.warning("consumer_basic_cancel_failed", queue=self._queue_name, error=repr(exc))

    async def _close_channel(self) -> None:
        if self._channel.is_closed:
            return
        try:
            await asyncio.wait_for(self._channel.close(), _BROKER_CALL_TIMEOUT)
        except BROKER_AWAY as exc:
            log.warning("consumer_channel_close_failed", queue=self._queue_name, error=repr(exc))
