"""One RabbitMQ delivery as the bus hands it to a handler, and the mapping from AMQP messages.

Split from ``_rabbitmq_consumer``: the delivery settles itself through its consumer, which
owns the channel and decides how to tell the broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import structlog
from aio_pika.abc import AbstractIncomingMessage

from shared.bus._retry import (
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    plan_failure,
)
from shared.bus.abc import BusError, HeaderValue, Message

if TYPE_CHECKING:
    from shared.bus._rabbitmq_consumer import RabbitConsumer

log = structlog.get_logger(__name__)

Outcome = Literal["acked", "nacked", "dead_lettered", "requeued", "retried"]


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
        self.outcome: Outcome | None = None
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
        # A retried message arrives from its retry queue through the default exchange; the
        # handler still sees where it was first published, as on the in-process bus.
        original = self._message.headers.get(ORIGINAL_EXCHANGE_HEADER)
        return original if isinstance(original, str) else self._incoming.exchange or ""

    @property
    def routing_key(self) -> str:
        original = self._message.headers.get(ORIGINAL_ROUTING_KEY_HEADER)
        return original if isinstance(original, str) else self._incoming.routing_key or ""

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
        """Retry the message later or dead-letter it, because handling it raised ``exc``."""
        plan = plan_failure(
            self._consumer.spec,
            self._message,
            exc,
            exchange=self.exchange,
            routing_key=self.routing_key,
        )
        if plan.is_retry:
            await self._consumer.settle(self, "retried", plan=plan)
        else:
            await self._consumer.settle(self, "dead_lettered", plan.headers)

    def process(self) -> _Process:
        """Context manager: ack on normal exit; retry or dead-letter on an exception."""
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
