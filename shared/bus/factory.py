"""Chooses the bus implementation from ``AMQP_URL`` and wraps it as a lifecycle component."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace

import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from shared.backoff import Backoff
from shared.bus._reconnect import CONNECT_BACKOFF, keep_trying
from shared.bus.abc import Bus, BusError, TopologyError
from shared.bus.inprocess import InProcessBus
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import Topology
from shared.errors import ConfigurationError
from shared.settings import masked_url

log = structlog.get_logger(__name__)


def create_bus(
    amqp_url: SecretStr | None,
    topology: Topology,
    *,
    all_in_one: bool,
    registry: CollectorRegistry | None = None,
) -> Bus:
    """RabbitMQ when ``amqp_url`` is set; the in-process bus only inside the all-in-one process.
    The bus counts its dead letters in ``registry`` (the process's ``/metrics``).

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
        return InProcessBus(topology, registry=registry)
    # One attempt per start(): the BusComponent is the one layer that retries it.
    return RabbitMQBus(amqp_url.get_secret_value(), topology, start_timeout=0.0, registry=registry)


class BusComponent:
    """Adapts a bus to the lifecycle: connects in the background, closes last.

    ``start()`` returns at once and keeps connecting with exponential backoff until the bus
    is up, so the HTTP server starts meanwhile and reports not-ready on ``/readyz`` (callbacks
    are answered 503 and WeCom retries them) instead of the process exiting while the broker
    is briefly away. Components that cannot work without the bus await :meth:`connected`.

    This component is the one place that retries reaching the broker: ``bus.start()`` makes
    one attempt (``create_bus``), a service's subscriptions are retried through
    :meth:`keep_trying`, and once connected aio-pika's robust connection reconnects by itself.
    It sits here because only the lifecycle knows that "until it works" is right: a bus used
    on its own (a script, a test) should fail rather than wait for ever.

    Args:
        bus: the bus to start and close.
        url: the broker's URL (``AMQP_URL``), named in every retry's log line with its
            password masked.
        retry_initial_s: the first wait between attempts, doubled after each failure…
        retry_max_s: …up to this many seconds.
    """

    name = "bus"

    def __init__(
        self,
        bus: Bus,
        *,
        url: SecretStr | None = None,
        retry_initial_s: float = CONNECT_BACKOFF.initial_s,
        retry_max_s: float = CONNECT_BACKOFF.cap_s,
    ) -> None:
        self.bus = bus
        self.backoff: Backoff = replace(
            CONNECT_BACKOFF, initial_s=retry_initial_s, cap_s=retry_max_s
        )
        self._task: asyncio.Task[None] | None = None
        self._url = None if url is None else masked_url(url)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="bus-connect")

    async def connected(self) -> None:
        """Wait until the bus is up (raises if connecting gave up on a topology conflict)."""
        if self._task is None:
            raise BusError("the bus component was not started")
        await asyncio.shield(self._task)

    async def keep_trying(
        self,
        step: Callable[[], Awaitable[None]],
        *,
        undo: Callable[[], Awaitable[None]],
        event: str,
        **log_fields: object,
    ) -> None:
        """Run ``step`` once the bus is up, and again after each ``BusError`` (``undo`` first,
        then a warning ``event`` and a wait as this component's backoff says).

        For what must happen once connected and can fail on a channel that closed just after
        connecting: a service's subscriptions. Any other error is raised at once.
        """
        await self.connected()
        await keep_trying(step, self.backoff, event=event, undo=undo, **log_fields)

    async def _connect(self) -> None:
        try:
            await keep_trying(
                self.bus.start, self.backoff, event="bus_connect_failed", url=self._url
            )
        except TopologyError:
            # Another deployment declared these names differently: retrying cannot help.
            log.exception("bus_topology_conflict")
            raise

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.close()
