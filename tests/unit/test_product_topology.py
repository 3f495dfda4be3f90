"""The product's consumer queues are defined once and declared identically by every process
that declares them; a type nobody consumes still falls through to ``wecom.events.unrouted``."""

from __future__ import annotations

import pytest

from auth_service.service import AUTH_TOPOLOGY
from gateway.service import GATEWAY_TOPOLOGY
from notifier.service import NOTIFIER_TOPOLOGY
from shared.bus.abc import Message
from shared.bus.inprocess import InProcessBus
from shared.bus.product_topology import (
    AUTH_EVENTS_QUEUE,
    PRODUCT_TOPOLOGY,
    TOKEN_EVENTS_QUEUE,
)
from shared.bus.topology import BASE_TOPOLOGY, EVENTS_EXCHANGE, UNROUTED_QUEUE, Topology
from shared.contracts import event_types
from token_service.service import TOKEN_TOPOLOGY


def queues(topology: Topology) -> dict[str, object]:
    """The topology's queue specs by name."""
    return {queue.name: queue for queue in topology.queues}


def test_the_gateway_declares_every_product_consumer_queue_as_its_consumer_does() -> None:
    """Same name, same bindings, same arguments: RabbitMQ accepts both declarations."""
    gateway = queues(GATEWAY_TOPOLOGY)
    for spec in PRODUCT_TOPOLOGY.queues:
        assert gateway[spec.name] == spec
    consumers = {**queues(TOKEN_TOPOLOGY), **queues(AUTH_TOPOLOGY), **queues(NOTIFIER_TOPOLOGY)}
    for spec in PRODUCT_TOPOLOGY.queues:
        assert consumers[spec.name] == spec


def test_every_process_topology_merges_without_conflict() -> None:
    """`wecom-suite run`'s topology and the gateway's merge and validate."""
    merged = BASE_TOPOLOGY.merged(
        GATEWAY_TOPOLOGY, TOKEN_TOPOLOGY, AUTH_TOPOLOGY, NOTIFIER_TOPOLOGY
    )
    merged.validate()
    assert set(queues(PRODUCT_TOPOLOGY)) <= set(queues(merged))


@pytest.mark.parametrize(
    ("event_type", "queue"),
    [
        (event_types.COMMAND_SUITE_TICKET, TOKEN_EVENTS_QUEUE),
        (event_types.COMMAND_CREATE_AUTH, AUTH_EVENTS_QUEUE),
        (event_types.DATA_MESSAGE_TEXT, UNROUTED_QUEUE),
        ("command.some_future_info_type", UNROUTED_QUEUE),
    ],
)
async def test_on_the_gateways_topology_alone_each_event_lands_where_it_belongs(
    event_type: str, queue: str
) -> None:
    """Consumed types wait in their consumer's queue; the rest go to the unrouted queue."""
    bus = InProcessBus(BASE_TOPOLOGY.merged(GATEWAY_TOPOLOGY))
    await bus.start()
    try:
        message = Message(body=b"{}", message_id="1", type=event_type)
        await bus.publish(EVENTS_EXCHANGE, event_type, message)
        names = (*queues(PRODUCT_TOPOLOGY), UNROUTED_QUEUE)
        depths = {name: bus.queue_depth(name) for name in names}
        assert depths == {name: int(name == queue) for name in depths}
    finally:
        await bus.close()
