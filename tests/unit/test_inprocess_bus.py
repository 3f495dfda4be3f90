"""In-process bus behaviour beyond the shared contract: overflow policies."""

from __future__ import annotations

import pytest

from shared.bus.abc import Message, PublishRejected
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    EVENTS_EXCHANGE,
    UNROUTED_QUEUE,
    Binding,
    QueueSpec,
    Topology,
)


def _message(n: int) -> Message:
    return Message(body=b"{}", message_id=str(n), type="data.event.x")


async def test_unrouted_events_keep_the_newest_window() -> None:
    """Events nobody consumes yet never make publishing fail: the oldest are dropped."""
    bus = InProcessBus(BASE_TOPOLOGY)
    await bus.start()
    try:
        for n in range(10_050):
            await bus.publish(EVENTS_EXCHANGE, "data.event.nobody_listens", _message(n))
        assert bus.queue_depth(UNROUTED_QUEUE) == 10_000
    finally:
        await bus.close()


async def test_reject_publish_queue_refuses_when_full() -> None:
    """A bounded consumer queue tells the publisher instead of dropping silently."""
    queue = QueueSpec("q", bindings=(Binding(EVENTS_EXCHANGE, "#"),), max_length=2)
    bus = InProcessBus(BASE_TOPOLOGY.merged(Topology(queues=(queue,))))
    await bus.start()
    try:
        await bus.publish(EVENTS_EXCHANGE, "a", _message(1))
        await bus.publish(EVENTS_EXCHANGE, "a", _message(2))
        with pytest.raises(PublishRejected):
            await bus.publish(EVENTS_EXCHANGE, "a", _message(3))
        assert bus.queue_depth("q") == 2
    finally:
        await bus.close()
