"""Chooses the bus implementation from ``AMQP_URL`` and wraps it as a lifecycle component."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from pydantic import SecretStr

from shared.bus.abc import Bus, BusError, TopologyError
from shared.bus.inprocess import InProcessBus
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import Topology
from shared.errors import ConfigurationError

log = structlog.get_logger(__name__)


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
    """Adapts a bus to the lifecycle: connects in the background, closes last.

    ``start()`` returns at once and keeps connecting with exponential backoff until the bus
    is up, so the HTTP server starts meanwhile and reports not-ready on ``/readyz`` (callbacks
    are answered 503 and WeCom retries them) instead of the process exiting while the broker
    is briefly away. Components that cannot work without the bus await :meth:`connected`.
    """

    name = "bus"

    def __init__(
        self, bus: Bus, *, retry_initial_s: float = 0.5, retry_max_s: float = 15.0
    ) -> None:
        self.bus = bus
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="bus-connect")

    async def connected(self) -> None:
        """Wait until the bus is up (raises if connecting gave up on a topology conflict)."""
        if self._task is None:
            raise BusError("the bus component was not started")
        await asyncio.shield(self._task)

    async def _connect(self) -> None:
        delay = self._retry_initial_s
        while True:
            try:
                await self.bus.start()
            except TopologyError:
                # Another deployment declared these names differently: retrying cannot help.
                log.exception("bus_topology_conflict")
                raise
            except BusError as exc:
                log.warning("bus_connect_failed", error=exc.code, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
            else:
                return

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.close()
