"""The gateway on a real RabbitMQ: a callback becomes one persistent, confirmed message."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, DeliveryMode

from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY, EVENTS_EXCHANGE, Binding, QueueSpec, Topology
from tests.support.gateway import serve_gateway

pytestmark = pytest.mark.integration

WAIT = 5.0
TICKET = (
    b"<xml><SuiteId><![CDATA[wwsandbox0000000001]]></SuiteId>"
    b"<InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>1700000000</TimeStamp>"
    b"<SuiteTicket><![CDATA[ticket-1]]></SuiteTicket></xml>"
)


@pytest.fixture
def capture_queue() -> str:
    return f"test.gateway.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def broker(amqp_url: str, capture_queue: str) -> AsyncIterator[AbstractChannel]:
    """A channel on a side connection, to read what the gateway published."""
    connection = await aio_pika.connect(
        amqp_url, timeout=WAIT, client_properties={"connection_name": "test-side"}
    )
    try:
        channel = await connection.channel()
        yield channel
        await channel.queue_delete(capture_queue)
    finally:
        await connection.close()


async def test_callback_is_published_to_rabbitmq_once(
    amqp_url: str, capture_queue: str, broker: AbstractChannel, request: pytest.FixtureRequest
) -> None:
    """A sealed callback is a persistent JSON message keyed by the envelope id; a retry of it
    publishes nothing more."""
    capture = QueueSpec(capture_queue, bindings=(Binding(EVENTS_EXCHANGE, "#"),), dead_letter=False)
    topology = BASE_TOPOLOGY.merged(Topology(queues=(capture,)))
    bus = RabbitMQBus(amqp_url, topology, connection_name=request.node.name, start_timeout=WAIT)

    async with serve_gateway(bus=bus) as gw:
        async with gw.session.get(gw.url("/readyz")) as response:
            assert response.status == 200
        assert await gw.post("command", gw.seal(TICKET)) == (200, "success")

        # The gateway answers only after the broker confirmed, so the message is queued now.
        queue = await broker.declare_queue(capture_queue, passive=True)
        incoming = await queue.get(timeout=WAIT)
        envelope = json.loads(incoming.body)
        assert envelope["type"] == incoming.type == "command.suite_ticket"
        assert incoming.message_id == envelope["id"]
        assert incoming.delivery_mode == DeliveryMode.PERSISTENT
        assert incoming.content_type == "application/json"
        assert incoming.headers["schema"] == 1
        assert incoming.timestamp is not None
        await incoming.ack()

        gw.clock.advance(5)
        assert await gw.post("command", gw.seal(TICKET)) == (200, "success")

        after = await broker.declare_queue(capture_queue, passive=True)
        assert after.declaration_result.message_count == 0
