"""Wiring of the notifier: store, WeCom client, token and auth clients and handlers as one
lifecycle component, and the parts of its standalone process (``shared.component``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from prometheus_client import CollectorRegistry

from notifier.dispatch import Dispatcher, InstalledAgents
from notifier.domain import NotifierPolicy, app_windows, member_windows
from notifier.handlers import NotifierHandlers
from notifier.limits import SendLimits
from notifier.media import MediaResolver
from notifier.metrics import NotifierMetrics
from notifier.queries import NotifyQueries
from notifier.schedule import RequestSchedule
from notifier.sender import WeComSender
from notifier.settings import NotifierServiceSettings, NotifierSettings
from notifier.store import COLLECTIONS, StoredNotifications
from notifier.tokens import CachedCorpTokens
from shared.auth_client import AuthClient
from shared.bus.abc import Bus
from shared.bus.factory import BusComponent
from shared.bus.product_topology import NOTIFY_QUEUE, NOTIFY_QUEUE_SPEC
from shared.bus.topology import RPC_NOTIFY_QUEUE, RPC_TOPOLOGY, QueueSpec, Topology
from shared.component import BusService, ServiceProcess, Subscription
from shared.lifecycle import Readiness
from shared.metrics import new_registry, wecom_call_observer
from shared.storage.abc import DocumentStore
from shared.storage.factory import create_service_store
from shared.tokens import TokensClient
from shared.wecom.api import WeComClient

log = structlog.get_logger(__name__)

# NOTIFY_QUEUE and its spec (retries, bindings) are the product's, in
# shared.bus.product_topology: the gateway declares the same spec (docs/bus.md, "First start").
# Retries are for failures: WeCom's transient ones (-1, network, 5xx, 45009) get a growing
# backoff; a delivery of a request another delivery owns comes back later. Send limits never
# use them (they are scheduled, notifier/limits.py).
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


class NotifierService(BusService):
    """The component: consumes notifier.requests once the bus is up; reports readiness."""

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
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            bus,
            bus_component,
            store or create_service_store(settings, COLLECTIONS),
            readiness,
        )
        self._settings = settings
        # Injected so that tests can run the limits on a compressed clock.
        self._clock = clock
        self._sleep = sleep
        # In-flight sends finish (or are requeued) before the clients close.
        self.stop_grace_s = settings.wecom_api_timeout_s
        registry = registry or new_registry()
        self.metrics = NotifierMetrics.create(registry)
        self._client = WeComClient(
            settings.api_base,
            timeout_s=settings.wecom_api_timeout_s,
            observer=wecom_call_observer(registry),
        )
        self.handlers: NotifierHandlers | None = None
        self.queries: NotifyQueries | None = None

    async def prepare(self) -> None:
        timeout = self._settings.notify_rpc_timeout_s
        policy = policy_of(self._settings)
        clock, sleep = self._clock, self._sleep
        repository = StoredNotifications(
            self.store, record_ttl_s=self._settings.notify_record_ttl_s, clock=clock
        )
        # Token lifetimes are real time, whatever clock the limits run on.
        tokens = CachedCorpTokens(TokensClient(self.bus, timeout_s=timeout))
        sender = WeComSender(self._client, tokens)
        dispatcher = Dispatcher(
            repository,
            sender,
            InstalledAgents(AuthClient(self.bus, timeout_s=timeout)),
            SendLimits(repository, self.metrics, policy, clock=clock),
            MediaResolver(repository, sender, self.metrics, margin_s=policy.media_margin_s),
            self.metrics,
            policy,
            clock=clock,
            sleep=sleep,
        )
        self.queries = NotifyQueries(repository)
        schedule = RequestSchedule(repository, self.bus, clock=clock, sleep=sleep)
        self.handlers = NotifierHandlers(
            dispatcher,
            schedule,
            self.bus,
            self.metrics,
            NOTIFY_QUEUE_SPEC,
            suite_id=self._settings.suite_id,
            clock=clock,
        )
        self.spawn(self._scheduling(schedule), "notifier-schedule")

    async def _scheduling(self, schedule: RequestSchedule) -> None:
        # Nothing can be published before the bus is up.
        await self._bus_component.connected()
        await schedule.run()

    def subscriptions(self) -> list[Subscription]:
        if self.handlers is None or self.queries is None:
            return []
        return [
            Subscription(
                NOTIFY_QUEUE, handler=self.handlers.handle, prefetch=self._settings.notify_prefetch
            ),
            Subscription(RPC_NOTIFY_QUEUE, rpc=self.queries.answer, prefetch=64),
        ]

    async def cleanup(self) -> None:
        await self._client.close()


PROCESS: Final = ServiceProcess(
    NotifierServiceSettings,
    name=NotifierService.name,
    topology=NOTIFIER_TOPOLOGY,
    make=NotifierService,
)


def main() -> None:
    """Entry point of ``python -m notifier`` and ``wecom-suite notifier``."""
    PROCESS.main()
