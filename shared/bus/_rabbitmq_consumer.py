"""The consuming half of the RabbitMQ bus: deliveries settled exactly once, one task per handler,
and a graceful cancel that requeues what its handlers did not finish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Literal

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from structlog.contextvars import bound_contextvars

from shared.bus.abc import AlreadySettled, BusError, Handler, HeaderValue, Message
from shared.errors import ServiceError

log = structlog.get_logger(__name__)

_HEADER_TEXT_LIMIT = 500  # an exception message in a dead-letter header, truncated
_CANCEL_WAIT = 1.0  # how long a cancelled handler may take to unwind before we give up on it
_BROKER_CALL_TIMEOUT = 5.0  # basic.cancel and channel.close during shutdown

_Outcome = Literal["acked", "nacked", "dead_lettered", "requeued"]

# Publishes a copy of a message, with extra headers, to the dead-letter queue of ``queue``
# and returns once the broker confirmed it (provided by the bus, which owns the publisher).
DeadLetterPublisher = Callable[[str, Message, dict[str, HeaderValue]], Awaitable[None]]


def message_from_amqp(incoming: AbstractIncomingMessage) -> Message:
    """The bus ``Message`` of an AMQP delivery."""
    timestamp = incoming.timestamp
    if timestamp is not None and timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)  # AMQP timestamps are UTC seconds
    return Message(
        body=incoming.body,
        message_id=incoming.message_id or "",
        type=incoming.type or "",
        content_type=incoming.content_type or "application/json",
        headers=_headers_from_amqp(incoming.headers),
        correlation_id=incoming.correlation_id,
        reply_to=incoming.reply_to,
        timestamp=timestamp,
    )


def _headers_from_amqp(headers: Mapping[str, object]) -> dict[str, HeaderValue]:
    # AMQP tables can hold bytes, decimals, timestamps and nested tables (RabbitMQ's own
    # ``x-death`` is a list of tables); the bus contract has scalars only, so anything else
    # becomes text rather than being dropped.
    converted: dict[str, HeaderValue] = {}
    for key, value in headers.items():
        if value is None or isinstance(value, str | int | float | bool):
            converted[key] = value
        elif isinstance(value, bytes):
            converted[key] = value.decode("utf-8", "replace")
        elif isinstance(value, Decimal):
            converted[key] = float(value)
        elif isinstance(value, datetime):
            converted[key] = value.isoformat()
        else:
            converted[key] = json.dumps(value, default=str, sort_keys=True)
    return converted


def _death_headers(reason: str, queue: str) -> dict[str, HeaderValue]:
    return {"x-death-reason": reason, "x-death-queue": queue}


class RabbitDelivery:
    """One AMQP delivery handed to a handler; settled exactly once."""

    __slots__ = ("_consumer", "_incoming", "_message", "outcome", "tag", "task")

    def __init__(self, incoming: AbstractIncomingMessage, consumer: RabbitConsumer, tag: int):
        self._incoming = incoming
        self._consumer = consumer
        self._message = message_from_amqp(incoming)
        self.tag = tag
        self.outcome: _Outcome | None = None
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        # Never the body: deliveries end up in tracebacks and log lines.
        return (
            f"<Delivery queue={self._consumer.queue_name!r} tag={self.tag} "
            f"message_id={self._message.message_id!r} outcome={self.outcome}>"
        )

    @property
    def queue_name(self) -> str:
        return self._consumer.queue_name

    @property
    def incoming(self) -> AbstractIncomingMessage:
        return self._incoming

    @property
    def message(self) -> Message:
        return self._message

    @property
    def exchange(self) -> str:
        return self._incoming.exchange or ""

    @property
    def routing_key(self) -> str:
        return self._incoming.routing_key or ""

    @property
    def redelivered(self) -> bool:
        return bool(self._incoming.redelivered)

    @property
    def is_settled(self) -> bool:
        return self.outcome is not None

    async def ack(self) -> None:
        """Done with the message: remove it from the queue.

        Raises:
            AlreadySettled: the delivery was already settled.
            BusError: the channel is gone (the broker will redeliver the message).
        """
        await self._consumer.settle(self, "acked")

    async def nack(self, *, requeue: bool) -> None:
        """Give the message back (``requeue=True``, redelivered) or dead-letter it.

        Raises:
            AlreadySettled: the delivery was already settled.
            BusError: the channel is gone (the broker will redeliver the message).
        """
        if requeue:
            await self._consumer.settle(self, "nacked")
        else:
            headers = _death_headers("rejected", self._consumer.queue_name)
            await self._consumer.settle(self, "dead_lettered", headers)

    async def fail(self, exc: Exception) -> None:
        """Dead-letter the message because handling it raised ``exc``."""
        headers = _death_headers("handler_failed", self._consumer.queue_name)
        headers["x-exception-type"] = type(exc).__name__
        headers["x-exception-message"] = str(exc)[:_HEADER_TEXT_LIMIT]
        await self._consumer.settle(self, "dead_lettered", headers)

    def process(self) -> _Process:
        """Context manager: ack on normal exit, dead-letter on an exception (re-raised)."""
        return _Process(self)


class _Process:
    """``async with delivery.process():`` as in aio-pika, but a cancelled block leaves the
    delivery unsettled so that the stopping consumer requeues it instead of dead-lettering."""

    def __init__(self, delivery: RabbitDelivery) -> None:
        self._delivery = delivery

    async def __aenter__(self) -> RabbitDelivery:
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
            try:
                await delivery.fail(exc)
            except BusError as error:
                # Keep the handler's exception, not ours: the broker redelivers the message.
                log.warning(
                    "consumer_settle_failed",
                    queue=delivery.queue_name,
                    message_id=delivery.message.message_id,
                    outcome="dead_lettered",
                    error=error.message,
                )


class RabbitConsumer:
    """A subscription on its own channel: one task per delivery, ``prefetch`` unsettled at most
    (the broker enforces it through basic.qos)."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue_name: str,
        handler: Handler,
        *,
        dead_letter: DeadLetterPublisher | None,
        on_stopped: Callable[[RabbitConsumer], None],
    ) -> None:
        self._channel = channel
        self._queue_name = queue_name
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
        outcome: _Outcome,
        headers: dict[str, HeaderValue] | None = None,
    ) -> None:
        """Record ``outcome`` for ``delivery`` and tell the broker.

        Raises:
            AlreadySettled: the delivery was already settled.
            BusError: the broker could not be told (it will redeliver the message).
        """
        if delivery.outcome is not None:
            raise AlreadySettled(
                f"delivery {delivery.tag} of queue {self._queue_name!r} was already "
                f"{delivery.outcome.replace('_', '-')}"
            )
        delivery.outcome = outcome
        self._unsettled.pop(delivery.tag, None)
        # Shielded, as arq shields finish_job: a handler cancelled mid-settle must not leave
        # the dead-letter copy published and the original unacknowledged.
        settling = asyncio.ensure_future(self._tell_broker(delivery, outcome, headers or {}))
        self._tasks.add(settling)
        settling.add_done_callback(self._tasks.discard)
        await asyncio.shield(settling)

    async def _tell_broker(
        self, delivery: RabbitDelivery, outcome: _Outcome, headers: dict[str, HeaderValue]
    ) -> None:
        incoming = delivery.incoming
        try:
            if outcome == "acked":
                await incoming.ack()
            elif outcome in ("nacked", "requeued"):
                await incoming.nack(requeue=True)
            else:
                await self._dead_letter_or_reject(delivery, headers)
        except CONNECTION_EXCEPTIONS as exc:
            raise BusError(
                f"could not settle delivery {delivery.tag} of queue {self._queue_name!r}: "
                f"{type(exc).__name__}"
            ) from exc

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
            try:
                await self._dead_letter(self._queue_name, delivery.message, headers)
            except BusError as exc:
                log.warning(
                    "dead_letter_publish_failed",
                    queue=self._queue_name,
                    message_id=delivery.message.message_id,
                    error_code=exc.code,
                )
            else:
                await delivery.incoming.ack()
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
                    await self._settle_quietly(delivery, "requeued")
                raise
            except Exception as exc:  # any handler failure dead-letters, as the contract says
                self._log_failure(delivery, exc)
                if not delivery.is_settled:
                    await self._settle_quietly(delivery, "dead_lettered", exc)
            else:
                if not delivery.is_settled:
                    await self._settle_quietly(delivery, "acked")

    async def _settle_quietly(
        self, delivery: RabbitDelivery, outcome: _Outcome, exc: Exception | None = None
    ) -> None:
        """Settle for the wrapper, where a broken channel can only be logged: the broker
        redelivers whatever it did not hear about."""
        try:
            if exc is not None:
                await delivery.fail(exc)
            else:
                await self.settle(delivery, outcome)
        except BusError as error:
            log.warning(
                "consumer_settle_failed",
                queue=self._queue_name,
                message_id=delivery.message.message_id,
                outcome=outcome,
                error=error.message,
            )

    def _log_failure(self, delivery: RabbitDelivery, exc: Exception) -> None:
        # No traceback and no exception message: either can carry the body (pydantic puts the
        # input in its errors). The message is in the dead-letter headers; point at the frame.
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        error_at = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else None
        log.error(
            "consumer_handler_failed",
            queue=self._queue_name,
            message_id=delivery.message.message_id,
            correlation_id=delivery.message.correlation_id,
            routing_key=delivery.routing_key,
            redelivered=delivery.redelivered,
            error_type=type(exc).__name__,
            error_code=exc.code if isinstance(exc, ServiceError) else None,
            error_at=error_at,
            already_settled=delivery.is_settled,
        )

    async def _requeue_quietly(self, incoming: AbstractIncomingMessage) -> None:
        try:
            await incoming.nack(requeue=True)
        except CONNECTION_EXCEPTIONS as exc:
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
                        "consumer_handler_ignored_cancel", queue=self._queue_name, count=len(stuck)
                    )
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
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            # Closing the channel below ends the subscription as well.
            log.warning("consumer_basic_cancel_failed", queue=self._queue_name, error=repr(exc))

    async def _close_channel(self) -> None:
        if self._channel.is_closed:
            return
        try:
            await asyncio.wait_for(self._channel.close(), _BROKER_CALL_TIMEOUT)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            log.warning("consumer_channel_close_failed", queue=self._queue_name, error=repr(exc))
