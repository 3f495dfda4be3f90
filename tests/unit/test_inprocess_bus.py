"""In-process bus behaviour beyond the shared contract: overflow policies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from shared.bus.abc import Delivery, Message, PublishRejected
from shared.bus.inprocess import INPROCESS_QUEUE_LIMITS, InProcessBus
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


@pytest.mark.parametrize(("queue_limits", "kept"), [({}, 10_000), (INPROCESS_QUEUE_LIMITS, 1000)])
async def test_unrouted_events_keep_the_newest_window(
    queue_limits: Mapping[str, int], kept: int
) -> None:
    """Events nobody consumes yet never make publishing fail: the oldest are dropped. In a
    process the window is capped (nobody can read it there); uncapped it is the topology's."""
    bus = InProcessBus(BASE_TOPOLOGY, queue_limits=queue_limits)
    await bus.start()
    try:
        for n in range(10_050):
            await bus.publish(EVENTS_EXCHANGE, "data.event.nobody_listens", _message(n))
        assert bus.queue_depth(UNROUTED_QUEUE) == kept
        delivered: list[str] = []

        async def take(delivery: Delivery) -> None:
            delivered.append(delivery.message.message_id)

        await bus.consume(UNROUTED_QUEUE, take)
        for _ in range(100):
            if len(delivered) == kept:
                break
            await asyncio.sleep(0.01)
        # The newest are kept, in order.
        assert delivered == [str(n) for n in range(10_050 - kept, 10_050)]
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


async def test_the_in_process_cap_is_the_unrouted_queues_only() -> None:
    """An application's own drop-head queue keeps the bound it declared."""
    queue = QueueSpec(
        "app.latest",
        bindings=(Binding(EVENTS_EXCHANGE, "#"),),
        max_length=5000,
        overflow="drop-head",
        dead_letter=False,
    )
    bus = InProcessBus(BASE_TOPOLOGY.merged(Topology(queues=(queue,))))
    await bus.start()
    try:
        for n in range(3000):
            await bus.publish(EVENTS_EXCHANGE, "data.event.x", _message(n))
        assert bus.queue_depth("app.latest") == 3000
    finally:
        await bus.close()
