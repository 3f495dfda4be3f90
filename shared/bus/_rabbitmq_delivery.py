"""One RabbitMQ delivery as the bus hands it to a handler, and the mapping from AMQP messages.

Split from ``_rabbitmq_consumer``: the delivery settles itself through its consumer, which
owns the channel and decides how to tell the broker; what settling means is ``_delivery``'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from aio_pika.abc import AbstractIncomingMessage

from shared.bus._delivery import Outcome, SettledOnce
from shared.bus._retry import ORIGINAL_EXCHANGE_HEADER, ORIGINAL_ROUTING_KEY_HEADER, FailurePlan
from shared.bus.abc import HeaderValue, Message

if TYPE_CHECKING:
    from shared.bus._rabbitmq_consumer import RabbitConsumer


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


class RabbitDelivery(SettledOnce["RabbitConsumer"]):
    """One AMQP delivery handed to a handler; settled exactly once, through its consumer."""

    __slots__ = ("_incoming", "_message")

    def __init__(self, incoming: AbstractIncomingMessage, consumer: RabbitConsumer, tag: int):
        super().__init__(consumer, tag)
        self._incoming = incoming
        self._message = message_from_amqp(incoming)

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

    async def _settle(
        self,
        outcome: Outcome,
        headers: dict[str, HeaderValue] | None = None,
        *,
        plan: FailurePlan | None = None,
    ) -> None:
        await self._consumer.settle(self, outcome, headers, plan=plan)
