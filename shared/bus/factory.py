"""Chooses the bus implementation from ``AMQP_URL`` and wraps it as a lifecycle component."""

from __future__ import annotations

from pydantic import SecretStr

from shared.bus.abc import Bus
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import Topology
from shared.errors import ConfigurationError


def create_bus(amqp_url: SecretStr | None, topology: Topology, *, all_in_one: bool) -> Bus:
    """RabbitMQ when ``amqp_url`` is set; the in-process bus only inside the all-in-one process.

    Raises:
        ConfigurationError: a standalone service has no ``AMQP_URL`` (its events would
            reach no other process), or the RabbitMQ bus is not available in this build.
    """
    if amqp_url is None:
        if not all_in_one:
            raise ConfigurationError(
                "AMQP_URL is required when a service runs as its own process "
                "(use `wecom-suite run` for the all-in-one process)"
            )
        return InProcessBus(topology)
    # The RabbitMQ implementation lands with issue #3; until then refuse clearly rather
    # than silently falling back to a bus no other process can reach.
    raise ConfigurationError("AMQP_URL is set, but the RabbitMQ bus is not available yet (#3)")


class BusComponent:
    """Adapts a bus to the lifecycle: connect first, close last."""

    name = "bus"

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.close()
