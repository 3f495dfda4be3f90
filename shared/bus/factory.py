"""Chooses the bus implementation from ``AMQP_URL`` and wraps it as a lifecycle component."""

from __future__ import annotations

from pydantic import SecretStr

from shared.bus.abc import Bus
from shared.bus.inprocess import InProcessBus
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import Topology
from shared.errors import ConfigurationError


def create_bus(amqp_url: SecretStr | None, topology: Topology, *, all_in_one: bool) -> Bus:
    """RabbitMQ when ``amqp_url`` is set; the in-process bus only inside the all-in-one process.

    Raises:
        ConfigurationError: a standalone service has no ``AMQP_URL`` (its events would
            reach no other process).
    """
    if amqp_url is None:
        if not all_in_one:
            raise ConfigurationError(
                "AMQP_URL is required when a service runs as its own process "
                "(use `wecom-suite run` for the all-in-one process)"
            )
        return InProcessBus(topology)
    return RabbitMQBus(amqp_url.get_secret_value(), topology)


class BusComponent:
    """Adapts a bus to the lifecycle: connect first, close last."""

    name = "bus"

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.close()
