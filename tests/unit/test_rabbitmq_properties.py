"""The AMQP properties the RabbitMQ bus builds by hand are aio-pika's own for the same message."""

from __future__ import annotations

from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import DeliveryMode

from shared.bus.abc import Message
from shared.bus.rabbitmq import _properties

STAMP = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize("expiration", [None, 1.5, 30.0])
@pytest.mark.parametrize(
    "message",
    [
        Message(body=b"{}", message_id="m1", type="command.suite_ticket", timestamp=STAMP),
        Message(
            body=b"x",
            message_id="m2",
            type="rpc.request",
            headers={"x-attempt": 2, "schema": 1, "flag": True, "none": None},
            correlation_id="c1",
            reply_to="amq.gen-1",
            timestamp=STAMP,
        ),
    ],
)
def test_hand_built_properties_match_aio_pika(message: Message, expiration: float | None) -> None:
    """Our hand-built AMQP properties equal the ones aio_pika.Message would build."""
    expected = aio_pika.Message(
        body=message.body,
        headers=dict(message.headers),
        content_type=message.content_type,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        timestamp=message.timestamp,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        expiration=expiration,
    ).properties
    assert _properties(message, expiration) == expected
