"""The shape every stateful bus service shares: open the store, consume once the bus is up,
report readiness, stop in order.

A service subclasses :class:`BusService`, builds its logic in :meth:`BusService.prepare`
(the store is open by then) and lists what it consumes and serves in
:meth:`BusService.subscriptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from tenacity import retry_if_exception_type

from shared.backoff import Backoff, RetryCallState
from shared.bus._reconnect import CONNECT_BACKOFF
from shared.bus.abc import Bus, Consumer, Handler, RpcHandler
from shared.bus.factory import BusComponent, create_bus
from shared.bus.topology import BASE_TOPOLOGY, Topology
from shared.errors import ConfigurationError
from shared.http import HttpBinding, add_health_routes, error_middleware, server_for
from shared.lifecycle import Component, Readiness, run_components
from shared.logging import configure_service_logging
from shared.metrics import new_registry
from shared.sandbox import mark_sandbox_mode
from shared.settings import exit_on_configuration_error, load_settings, require_explicit_sandbox
from shared.storage.abc import DocumentStore, StoreAuthenticationFailed, StoreError

S = TypeVar("S")

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A queue to consume (``handler``) or an RPC queue to serve (``rpc``)."""

    queue: str
    handler: Handler | None = None
    rpc: RpcHandler | None = None
    prefetch: int = 16


class BusService:
    """Base lifecycle component of token_service, auth_service and the notifier."""

    name = "service"
    # How long in-flight handlers may finish when the service stops before being requeued.
    stop_grace_s = 10.0
    # Reaching the store is retried as reaching the broker is: the same waits, for ever.
    store_backoff: Backoff = CONNECT_BACKOFF

    def __init__(
        self,
        bus: Bus,
        bus_component: BusComponent,
        store: DocumentStore,
        readiness: Readiness | None,
    ) -> None:
        self.bus = bus
        self.store = store
        self._bus_component = bus_component
        self._consumers: list[Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._store_open = False
        self._serving = False
        if readiness is not None:
            readiness.add("store", lambda: self._store_open)
            readiness.add(self.name, lambda: self._serving)

    async def prepare(self) -> None:
        """Build the service's logic; the store is open."""

    def subscriptions(self) -> list[Subscription]:
        return []

    async def cleanup(self) -> None:
        """Release what :meth:`prepare` made (HTTP clients…); the store closes afterwards."""

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` until the service stops."""
        self._tasks.append(asyncio.create_task(work, name=name))

    async def start(self) -> None:
        await self._open_store()
        self._store_open = True
        await self.prepare()
        self.spawn(self._serve(), f"{self.name}-serve")

    async def _open_store(self) -> None:
        """Open the store, retrying while its server is away or refuses the credentials.

        Like the bus (:class:`~shared.bus.factory.BusComponent`): a warning per failed
        attempt, an error-level line when the credentials are refused, capped waits. Any
        other error (a bug, an unwritable SQLite file) is raised at once.
        """

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            refused = isinstance(error, StoreAuthenticationFailed)
            emit = log.error if refused else log.warning
            emit(
                "store_authentication_failed" if refused else "store_connect_failed",
                service=self.name,
                error=str(error),
                attempt=state.attempt_number,
                retry_in_s=round(state.upcoming_sleep, 2),
                **(
                    {"operator_action": "check the user and password in MONGO_URL"}
                    if refused
                    else {}
                ),
            )

        await self.store_backoff.run(
            self.store.start, retry=retry_if_exception_type(StoreError), before_sleep=before_sleep
        )

    async def _serve(self) -> None:
        # /readyz answers meanwhile; consumers start once the bus is up. A failure to start
        # them (the channel closed just after connecting) is retried, by the bus component
        # that owns every retry of the bus: a service that stays up without consuming would
        # be worse than one that is late.
        await self._bus_component.connected()
        try:
            await self._bus_component.keep_trying(
                self._subscribe,
                undo=self._cancel_consumers,
                event="service_subscribe_failed",
                service=self.name,
            )
        except Exception:
            log.exception("service_subscribe_crashed", service=self.name)
            raise
        self._serving = True
        queues = [sub.queue for sub in self.subscriptions()]
        log.info("service_serving", service=self.name, queues=queues)

    async def _subscribe(self) -> None:
        for sub in self.subscriptions():
            if sub.rpc is not None:
                consumer = await self.bus.serve(sub.queue, sub.rpc, prefetch=sub.prefetch)
            elif sub.handler is not None:
                consumer = await self.bus.consume(sub.queue, sub.handler, prefetch=sub.prefetch)
            else:
                raise ValueError(f"subscription to {sub.queue!r} has no handler")
            self._consumers.append(consumer)

    async def _cancel_consumers(self) -> None:
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.cancel(grace=self.stop_grace_s)

    async def stop(self) -> None:
        self._serving = False
        await self._cancel_consumers()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.cleanup()
        if self._store_open:
            self._store_open = False
            await self.store.stop()


class ProcessSettings(HttpBinding, Protocol):
    """What a standalone service process reads besides its own settings."""

    @property
    def amqp_url(self) -> SecretStr | None: ...

    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str | None: ...

    @property
    def sandbox(self) -> bool: ...


P = TypeVar("P", bound=ProcessSettings)
P_contra = TypeVar("P_contra", contravariant=True)


class ServiceFactory(Protocol[P_contra]):
    """How a process builds its bus service: the service's class, as every one takes these."""

    def __call__(
        self,
        settings: P_contra,
        bus: Bus,
        bus_component: BusComponent,
        *,
        registry: CollectorRegistry,
        readiness: Readiness,
    ) -> Component: ...


class AppFactory(Protocol[P_contra]):
    """How a process that is an HTTP service (the gateway) builds its aiohttp app; the app
    serves ``/healthz``, ``/readyz`` and ``/metrics`` itself."""

    def __call__(
        self, settings: P_contra, bus: Bus, *, registry: CollectorRegistry, readiness: Readiness
    ) -> web.Application: ...


@dataclass(frozen=True, slots=True)
class ServiceProcess(Generic[P]):
    """One service as its own process, declared by its parts; :meth:`main` runs it.

    The process is RabbitMQ (``AMQP_URL`` required), the ``make`` component if any, and one
    HTTP server: the ``app`` if given, else one with only ``/healthz``, ``/readyz`` and
    ``/metrics``. Logging masks every secret the settings hold; sandbox mode is logged as a
    warning and shown on ``/readyz`` and ``/metrics``.
    """

    settings: type[P]
    name: str
    topology: Topology
    make: ServiceFactory[P] | None = None
    app: AppFactory[P] | None = None

    def main(self) -> None:
        """The entry point of ``python -m <service>`` (see :func:`service_main`)."""
        service_main(self.settings, self.run)

    async def run(self, settings: P) -> None:
        """Run the service until SIGTERM."""
        configure_service_logging(settings, self.name)
        registry = new_registry()
        bus = create_bus(
            settings.amqp_url,
            BASE_TOPOLOGY.merged(self.topology),
            all_in_one=False,
            registry=registry,
        )
        bus_component = BusComponent(bus, url=settings.amqp_url)
        readiness = Readiness()
        readiness.add("bus", lambda: bus.is_ready)
        mark_sandbox_mode(
            self.name, sandbox=settings.sandbox, registry=registry, readiness=readiness
        )
        components: list[Component] = [bus_component]
        if self.make is not None:
            components.append(
                self.make(settings, bus, bus_component, registry=registry, readiness=readiness)
            )
        if self.app is not None:
            app = self.app(settings, bus, registry=registry, readiness=readiness)
            server_name = self.name
        else:
            app = web.Application(middlewares=[error_middleware])
            add_health_routes(app, readiness, registry)
            server_name = f"{self.name}_http"
        components.append(server_for(app, settings, name=server_name))
        await run_components(components)


def service_main(settings_class: type[S], run: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """The entry point of ``python -m <service>``: settings, then ``run`` until SIGTERM; a
    configuration error stops it with one line and status 2, and so does sandbox mode that
    ``WECOM_SANDBOX=1`` did not ask for (:func:`shared.settings.require_explicit_sandbox`)."""
    settings = load_settings(settings_class)
    require_explicit_sandbox(settings)
    try:
        asyncio.run(run(settings))
    except ConfigurationError as exc:
        exit_on_configuration_error(exc.message)
