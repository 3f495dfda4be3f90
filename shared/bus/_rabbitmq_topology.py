"""Declaring the bus topology on RabbitMQ, idempotently: exchanges, quorum or classic queues,
bindings, the ``<queue>.dead`` route and the ``<queue>.retry.<level>`` delay queues.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel
from aio_pika.exceptions import ChannelPreconditionFailed
from pamqp.common import FieldTable

from shared.bus._broker_errors import BROKER_AWAY
from shared.bus.abc import BusError, TopologyError
from shared.bus.topology import (
    DEAD_LETTER_EXCHANGE,
    DEFAULT_EXCHANGE,
    RETRY_EXCHANGE,
    QueueSpec,
    Topology,
)


@dataclass
class DeclaredTopology:
    """The exchanges the bus publishes to, as declared."""

    exchanges: dict[str, AbstractExchange] = field(default_factory=dict)
    dead_exchange: AbstractExchange | None = None
    retry_exchange: AbstractExchange | None = None


async def declare_topology(channel: AbstractRobustChannel, topology: Topology) -> DeclaredTopology:
    """Declare every exchange, queue, binding, dead-letter and retry route of ``topology``.

    Raises:
        TopologyError: the broker holds a name with other settings.
        BusError: the broker could not be reached.
    """
    declared = DeclaredTopology()
    try:
        if any(spec.dead_letter for spec in topology.queues):
            declared.dead_exchange = await channel.declare_exchange(
                DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
            )
        if any(spec.retries for spec in topology.queues):
            declared.retry_exchange = await channel.declare_exchange(
                RETRY_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
            )
        for exchange in topology.exchanges:
            arguments: FieldTable | None = None
            if exchange.alternate_exchange is not None:
                arguments = {"alternate-exchange": exchange.alternate_exchange}
            declared.exchanges[exchange.name] = await channel.declare_exchange(
                exchange.name, exchange.kind, durable=exchange.durable, arguments=arguments
            )
        for queue in topology.queues:
            await _declare_queue(channel, topology, queue)
    except ChannelPreconditionFailed as exc:
        # RabbitMQ refuses to redeclare a name with other settings (kind, queue type,
        # arguments): a deployment mistake to surface, not a broker outage.
        raise TopologyError(f"the broker refused the topology: {exc}") from exc
    except BROKER_AWAY as exc:
        raise BusError(f"declaring the topology failed: {type(exc).__name__}") from exc
    return declared


async def _declare_queue(
    channel: AbstractRobustChannel, topology: Topology, spec: QueueSpec
) -> None:
    arguments: dict[str, str | int] = {}
    if spec.quorum:
        arguments["x-queue-type"] = "quorum"
    if spec.max_length is not None:
        arguments["x-max-length"] = spec.max_length
        arguments["x-overflow"] = spec.overflow
    dead_name = spec.dead_letter_queue
    if dead_name is not None:
        # The native route (a reject, or a failed copy, see _rabbitmq_consumer).
        arguments["x-dead-letter-exchange"] = DEAD_LETTER_EXCHANGE
        arguments["x-dead-letter-routing-key"] = dead_name
        dead_arguments = {"x-queue-type": "quorum"} if spec.quorum else None
        # No length limit: a poison message must never be lost.
        dead = await channel.declare_queue(
            dead_name, durable=spec.durable, arguments=dead_arguments
        )
        await dead.bind(DEAD_LETTER_EXCHANGE, routing_key=dead_name)
    await _declare_retry_queues(channel, spec)
    queue = await channel.declare_queue(
        spec.name, durable=spec.durable, arguments=arguments or None
    )
    for binding in spec.bindings:
        kind = topology.exchange(binding.exchange).kind
        await queue.bind(
            binding.exchange, routing_key="" if kind == "fanout" else binding.routing_key
        )


async def _declare_retry_queues(channel: AbstractRobustChannel, spec: QueueSpec) -> None:
    # One retry queue per delay level: per-message TTL only expires messages at the head
    # of a queue, so a 30 s message would hold back a 1 s one behind it in a shared queue.
    # Within one level every message waits the same delay, so the head always expires
    # first. The TTL is per message (``expiration``), not ``x-message-ttl``, so that a
    # changed delay needs no redeclaration (RabbitMQ refuses changed arguments).
    # Classic, durable queues: quorum queues only gained message TTL in 3.10 and
    # dead-letter at most once by default; classic TTL plus dead-lettering is the long
    # established, safe combination. Expired messages are dead-lettered through the
    # default exchange straight back to the consuming queue.
    arguments: FieldTable = {
        "x-dead-letter-exchange": DEFAULT_EXCHANGE,
        "x-dead-letter-routing-key": spec.name,
    }
    for name in spec.retry_queues:
        retry = await channel.declare_queue(name, durable=spec.durable, arguments=arguments)
        await retry.bind(RETRY_EXCHANGE, routing_key=name)
