"""Only "the broker is away" becomes a BusError on the RabbitMQ bus; a bug surfaces as itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractRobustChannel
from aio_pika.exceptions import MessageProcessError
from aiormq.exceptions import AMQPConnectionError, ChannelClosed, ChannelInvalidStateError
from structlog.testing import capture_logs

from shared.bus._broker_errors import BROKER_AWAY, is_broker_away
from shared.bus._rabbitmq_consumer import RabbitConsumer
from shared.bus._rabbitmq_delivery import RabbitDelivery
from shared.bus._rabbitmq_topology import declare_topology
from shared.bus.abc import BusError
from shared.bus.topology import ExchangeSpec, QueueSpec, Topology


@pytest.mark.parametrize(
    "error",
    [
        AMQPConnectionError("refused"),
        ChannelClosed(406, "closed"),
        ChannelInvalidStateError("closed"),
        ConnectionResetError(),
        TimeoutError(),
        OSError("unreachable"),
    ],
)
def test_the_broker_errors_are_caught(error: Exception) -> None:
    """Connection, channel, socket and timeout errors mean the broker is away."""
    assert isinstance(error, BROKER_AWAY)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("bug"), TypeError("bug"), StopAsyncIteration(), MessageProcessError("twice")],
)
def test_programming_errors_are_not(error: Exception) -> None:
    """aio-pika's CONNECTION_EXCEPTIONS would catch these; ours leaves them to surface."""
    assert not isinstance(error, BROKER_AWAY)


class FakeConnection:
    """The two facts ``is_broker_away`` reads from a connection."""

    def __init__(self, *, up: bool) -> None:
        self.is_closed = not up
        self.connected = asyncio.Event()
        if up:
            self.connected.set()


async def test_a_runtime_error_counts_as_away_only_while_the_connection_is_down() -> None:
    """aio-pika says "closed" with a RuntimeError; with the connection up it is a bug."""
    up = cast(AbstractConnection, FakeConnection(up=True))
    down = cast(AbstractConnection, FakeConnection(up=False))
    assert not is_broker_away(RuntimeError("closed"), up)
    assert is_broker_away(RuntimeError("closed"), down)
    assert not is_broker_away(TypeError("bug"), down)
    assert is_broker_away(ChannelInvalidStateError("closed"), up)


class RaisingChannel:
    """A channel whose first declaration raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def declare_exchange(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


TOPOLOGY = Topology(exchanges=(ExchangeSpec("test.x", "topic"),))


async def test_declaring_on_a_lost_connection_is_a_bus_error() -> None:
    """A reset socket while declaring is an outage: BusError, retried by the bus component."""
    channel = cast(AbstractRobustChannel, RaisingChannel(ConnectionResetError()))
    with pytest.raises(BusError, match="declaring the topology failed"):
        await declare_topology(channel, TOPOLOGY)


@pytest.mark.parametrize("error", [RuntimeError("bug"), TypeError("bug")])
async def test_a_bug_while_declaring_surfaces_as_itself(error: Exception) -> None:
    """A RuntimeError or TypeError from the declaring code is not turned into a BusError."""
    channel = cast(AbstractRobustChannel, RaisingChannel(error))
    with pytest.raises(type(error), match="bug"):
        await declare_topology(channel, TOPOLOGY)


class FakeIncoming:
    """An AMQP delivery whose ack and nack raise ``error``."""

    body = b"{}"
    message_id = "m1"
    type = "t"
    content_type = "application/json"
    headers: dict[str, object] = {}  # noqa: RUF012 - read only
    correlation_id = None
    reply_to = None
    timestamp = datetime(2026, 1, 1, tzinfo=UTC)
    exchange = "x"
    routing_key = "k"
    redelivered = False

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def ack(self) -> None:
        raise self.error

    async def nack(self, *, requeue: bool) -> None:
        raise self.error


def _delivery(error: Exception) -> RabbitDelivery:
    consumer = RabbitConsumer(
        cast(AbstractRobustChannel, object()),
        QueueSpec("test.q"),
        lambda delivery: asyncio.sleep(0),
        dead_letter=None,
        retry=None,
        on_stopped=lambda consumer: None,
    )
    return RabbitDelivery(cast(AbstractIncomingMessage, FakeIncoming(error)), consumer, 1)


async def test_an_ack_on_a_closed_channel_is_a_bus_error() -> None:
    """The broker will redeliver what it did not hear acked: a BusError says so."""
    delivery = _delivery(ChannelInvalidStateError("closed"))
    with pytest.raises(BusError, match="could not settle delivery 1"):
        await delivery.ack()


@pytest.mark.parametrize("error", [RuntimeError("bug"), TypeError("bug")])
async def test_a_bug_while_acking_surfaces_as_itself(error: Exception) -> None:
    """Not a BusError: nothing would retry it, and the traceback must point at the bug."""
    delivery = _delivery(error)
    with pytest.raises(type(error), match="bug"):
        await delivery.ack()


async def test_process_keeps_the_handlers_error_when_settling_fails() -> None:
    """A failed handler on a broken channel: the settle failure is logged, never raised."""
    delivery = _delivery(ChannelInvalidStateError("closed"))
    with capture_logs() as logs, pytest.raises(ValueError, match="handler failed"):
        async with delivery.process():
            raise ValueError("handler failed")
    assert delivery.outcome == "dead_lettered"
    assert [e["event"] for e in logs] == ["message_discarded", "consumer_settle_failed"]
