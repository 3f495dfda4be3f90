"""RabbitMQ bus behaviour beyond the shared contract: connecting, and the broker's own rules."""

from __future__ import annotations

import uuid

import aio_pika
import pytest
from structlog.testing import capture_logs

from shared.bus.abc import BusError, TopologyError
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import QueueSpec, Topology

WAIT = 5.0


async def test_start_gives_up_with_bus_error_when_no_broker_answers() -> None:
    """The first connection is retried for start_timeout, then fails clearly, password unlogged."""
    bus = RabbitMQBus(
        "amqp://guest:s3cret-pw@127.0.0.1:1/", Topology(), connect_timeout=0.2, start_timeout=0.5
    )

    with capture_logs() as logs, pytest.raises(BusError, match="cannot connect to RabbitMQ"):
        await bus.start()
    await bus.close()

    assert not bus.is_ready
    assert [e["event"] for e in logs].count("bus_connect_failed") >= 2
    assert "s3cret-pw" not in repr(logs)


@pytest.mark.integration
async def test_redeclaring_a_queue_with_other_settings_is_a_topology_error(amqp_url: str) -> None:
    """RabbitMQ refuses to change a queue's arguments: a deployment error, not an outage."""
    name = f"test.redeclare.{uuid.uuid4().hex[:10]}"
    first = RabbitMQBus(amqp_url, Topology(queues=(QueueSpec(name, dead_letter=False),)))
    changed = QueueSpec(name, dead_letter=False, max_length=5)
    second = RabbitMQBus(amqp_url, Topology(queues=(changed,)), start_timeout=WAIT)
    await first.start()
    try:
        with pytest.raises(TopologyError, match="refused the topology"):
            await second.start()
        assert not second.is_ready
        assert first.is_ready
    finally:
        await second.close()
        await first.close()
        connection = await aio_pika.connect(amqp_url, timeout=WAIT)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(name)
