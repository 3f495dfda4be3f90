"""Wiring of the notifier: store, WeCom client, token and auth clients and handlers as one
lifecycle component, and the standalone process (bus + component + health/metrics server)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from notifier.domain import app_windows, member_windows
from notifier.handlers import InstalledAgents, NotifierHandlers, NotifierPolicy
from notifier.metrics import NotifierMetrics
from notifier.sender import WeComSender
from notifier.settings import NotifierServiceSettings, NotifierSettings
from notifier.store import COLLECTIONS, StoredNotifications
from shared.auth_client import AuthClient
from shared.bus.abc import Bus, Consumer
from shared.bus.factory import BusComponent, create_bus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    NOTIFY_EXCHANGE,
    NOTIFY_REQUEST_KEY,
    RPC_TOPOLOGY,
    Binding,
    QueueSpec,
    Topology,
)
from shared.errors import ConfigurationError
from shared.http import HttpServer, add_health_routes, error_middleware
from shared.lifecycle import Readiness, run_components
from shared.logging import configure_service_logging
from shared.metrics import new_registry
from shared.settings import exit_on_configuration_error, load_settings
from shared.storage.abc import DocumentStore
from shared.storage.factory import create_store
from shared.tokens import TokensClient
from shared.wecom.api import WeComClient

log = structlog.get_logger(__name__)

NOTIFY_QUEUE: Final = "notifier.requests"
# Retries serve two purposes: WeCom's transient failures (-1, network, 5xx, 45009) get a
# growing backoff, and sends held back by a send limit come back once a window has moved on.
# NOTIFY_MAX_ATTEMPTS bounds the WeCom calls; the queue's own bound is higher so limit waits
# do not use them up (on its last delivery a waiting request is republished, never dropped).
NOTIFY_QUEUE_SPEC: Final = QueueSpec(
    NOTIFY_QUEUE,
    bindings=(Binding(NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY),),
    retry_delays=(1.0, 2.0, 5.0, 15.0, 30.0, 60.0),
    max_attempts=12,
)
NOTIFIER_TOPOLOGY: Final = RPC_TOPOLOGY.merged(Topology(queues=(NOTIFY_QUEUE_SPEC,)))


def retry_horizon_s(spec: QueueSpec, claim_s: float) -> float:
    """The longest the bus can take over all of a request's retries, plus one claim."""
    delays = sum(spec.retry_delay(attempt) for attempt in range(1, spec.max_attempts))
    return delays + claim_s


def policy_of(settings: NotifierSettings, spec: QueueSpec = NOTIFY_QUEUE_SPEC) -> NotifierPolicy:
    return NotifierPolicy(
        max_attempts=settings.notify_max_attempts,
        member_windows=member_windows(
            settings.notify_limit_member_per_minute,
            settings.notify_limit_member_per_hour,
            minute_s=settings.notify_limit_minute_s,
            hour_s=settings.notify_limit_hour_s,
        ),
        app_windows=app_windows(
            settings.notify_limit_app_per_day, day_s=settings.notify_limit_day_s
        ),
        margin_s=settings.notify_limit_margin_s,
        group_size=settings.notify_all_recipients,
        hold_s=settings.notify_limit_hold_s,
        media_margin_s=settings.notify_media_margin_s,
        claim_s=settings.notify_claim_s,
        retry_horizon_s=retry_horizon_s(spec, settings.notify_claim_s),
    )


class NotifierService:
    """The component: starts the store, then (once the bus is up) consumes notifier.requests;
    reports readiness."""

    name = "notifier"

    def __init__(
        self,
        settings: NotifierSettings,
        bus: Bus,
        bus_component: BusComponent,
        *,
        store: DocumentStore | None = None,
        registry: CollectorRegistry | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self._settings = settings
        self._bus = bus
        self._bus_component = bus_component
        self.store = store or create_store(
            COLLECTIONS,
            mongo_url=settings.mongo_url,
            mongo_db=settings.mongo_db,
            data_dir=settings.data_dir,
        )
        self.metrics = NotifierMetrics.create(registry or new_registry())
        self._client = WeComClient(
            settings.api_base,
            timeout_s=settings.wecom_api_timeout_s,
            observer=self.metrics.observe_wecom_call,
        )
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._serving = False
        self._store_started = False
        self.handlers: NotifierHandlers | None = None
        if readiness is not None:
            readiness.add("store", lambda: self._store_started)
            readiness.add("notifier", lambda: self._serving)

    async def start(self) -> None:
        await self.store.start()
        self._store_started = True
        timeout = self._settings.notify_rpc_timeout_s
        self.handlers = NotifierHandlers(
            StoredNotifications(self.store, record_ttl_s=self._settings.notify_record_ttl_s),
            WeComSender(self._client, TokensClient(self._bus, timeout_s=timeout)),
            InstalledAgents(AuthClient(self._bus, timeout_s=timeout)),
            self._bus,
            self.metrics,
            policy_of(self._settings),
            NOTIFY_QUEUE_SPEC,
            suite_id=self._settings.suite_id,
        )
        self._task = asyncio.create_task(self._serve(self.handlers), name="notifier-serve")

    async def _serve(self, handlers: NotifierHandlers) -> None:
        # The HTTP server answers /readyz meanwhile; the consumer starts once the bus is up.
        await self._bus_component.connected()
        self._consumer = await self._bus.consume(
            NOTIFY_QUEUE, handlers.handle, prefetch=self._settings.notify_prefetch
        )
        self._serving = True
        log.info("notifier_serving", api_base=self._settings.api_base)

    async def stop(self) -> None:
        self._serving = False
        if self._consumer is not None:
            # In-flight sends finish (or are requeued) before the clients close.
            await self._consumer.cancel(grace=self._settings.wecom_api_timeout_s)
            self._consumer = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._client.close()
        if self._store_started:
            self._store_started = False
            await self.store.stop()


def secrets_of(settings: NotifierSettings) -> list[str]:
    """Values the log redactor must mask."""
    values = [settings.suite_secret.get_secret_value()]
    if settings.provider_secret is not None:
        values.append(settings.provider_secret.get_secret_value())
    return values


async def run_notifier(settings: NotifierServiceSettings) -> None:
    """The notifier as its own process, until SIGTERM."""
    configure_service_logging(settings, "notifier", secrets_of(settings))
    bus = create_bus(settings.amqp_url, BASE_TOPOLOGY.merged(NOTIFIER_TOPOLOGY), all_in_one=False)
    bus_component = BusComponent(bus)
    registry = new_registry()
    readiness = Readiness()
    readiness.add("bus", lambda: bus.is_ready)
    service = NotifierService(settings, bus, bus_component, registry=registry, readiness=readiness)
    app = web.Application(middlewares=[error_middleware])
    add_health_routes(app, readiness, registry)
    server = HttpServer(app, settings.http_host, settings.http_port, name="notifier_http")
    await run_components([bus_component, service, server])


def main() -> None:
    """Entry point of ``python -m notifier`` and ``wecom-suite notifier``."""
    settings = load_settings(NotifierServiceSettings)
    try:
        asyncio.run(run_notifier(settings))
    except ConfigurationError as exc:
        exit_on_configuration_error(exc.message)
