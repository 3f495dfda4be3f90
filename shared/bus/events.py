"""How an event envelope becomes a message on ``wecom.events``: the same AMQP properties and
headers for every event, whichever service publishes it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.bus.abc import Bus, HeaderValue, Message
from shared.bus.topology import EVENTS_EXCHANGE
from shared.contracts import SCHEMA_VERSION, EventEnvelope

__all__ = ["EVENT_HEADERS", "event_message", "publish_event"]

EVENT_HEADERS: Mapping[str, HeaderValue] = MappingProxyType({"schema": SCHEMA_VERSION})
"""The headers of every event message (docs/events.md). Read-only and shared: buses copy what
they send."""


def event_message(envelope: EventEnvelope) -> Message:
    """The message that carries ``envelope``.

    Its ``message_id`` is the event id (what consumers de-duplicate on), its ``type`` the event
    type, its body the envelope's JSON, its ``timestamp`` the envelope's ``received_at``, and
    its headers :data:`EVENT_HEADERS`.
    """
    return Message(
        body=envelope.model_dump_json().encode(),
        message_id=envelope.id,
        type=envelope.type,
        headers=EVENT_HEADERS,
        timestamp=envelope.received_at,
    )


async def publish_event(bus: Bus, envelope: EventEnvelope, *, timeout: float = 5.0) -> None:
    """Publish ``envelope`` on ``wecom.events`` under its type, waiting for the confirm.

    Args:
        bus: the bus to publish on.
        envelope: the event, e.g. from :func:`shared.contracts.service_event`.
        timeout: seconds to wait for the broker's confirm.

    Raises:
        BusError: the bus did not take or confirm the message (see :meth:`Bus.publish`).
    """
    await bus.publish(EVENTS_EXCHANGE, envelope.type, event_message(envelope), timeout=timeout)
