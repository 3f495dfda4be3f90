"""Wiring of auth_service: the component (store, WeCom client, installs, handlers) and the
parts of its standalone process (see ``shared.component.ServiceProcess``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry

from auth_service.exchange import AuthApi
from auth_service.handlers import AuthHandlers, EventPublisher
from auth_service.installs import Installs
from auth_service.metrics import AuthMetrics
from auth_service.sessions import SESSION_COLLECTIONS, EndedSessions
from auth_service.settings import AuthServiceSettings, AuthSettings
from auth_service.store import COLLECTIONS, AuthRepository
from shared.bus.abc import Bus
from shared.bus.factory import BusComponent
from shared.bus.product_topology import AUTH_EVENTS_QUEUE, AUTH_EVENTS_SPEC
from shared.bus.topology import RPC_AUTH_QUEUE, RPC_TOPOLOGY, Topology
from shared.component import BusService, ServiceProcess, Subscription
from shared.lifecycle import Readiness
from shared.metrics import new_registry, wecom_call_observer
from shared.storage.abc import DocumentStore
from shared.storage.crypto import secret_box_for
from shared.storage.factory import create_service_store
from shared.tokens import TokensClient
from shared.wecom.api import WeComClient

# The queue and its bindings are the product's (shared.bus.product_topology): the gateway
# declares the same spec, so an install it accepts before this service first starts is kept.
EVENTS_QUEUE: Final = AUTH_EVENTS_QUEUE
AUTH_TOPOLOGY: Final = RPC_TOPOLOGY.merged(Topology(queues=(AUTH_EVENTS_SPEC,)))


class AuthService(BusService):
    """The component: consumes install events and answers ``rpc.auth`` once the bus is up."""

    name = "auth_service"

    def __init__(
        self,
        settings: AuthSettings,
        bus: Bus,
        bus_component: BusComponent,
        *,
        store: DocumentStore | None = None,
        registry: CollectorRegistry | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self._registry = registry or new_registry()
        super().__init__(
            bus,
            bus_component,
            store or create_service_store(settings, COLLECTIONS + SESSION_COLLECTIONS),
            readiness,
        )
        self._settings = settings
        self.metrics = AuthMetrics.create(self._registry)
        self._client = WeComClient(
            settings.api_base,
            timeout_s=settings.wecom_api_timeout_s,
            observer=wecom_call_observer(self._registry),
        )
        self.installs: Installs | None = None
        self.handlers: AuthHandlers | None = None

    async def prepare(self) -> None:
        box = secret_box_for(self._settings)
        repository = AuthRepository(self.store, box)
        api = AuthApi(
            self._client, TokensClient(self.bus), version=self._settings.auth_permanent_code_api
        )
        self.installs = Installs(
            repository,
            api,
            box,
            EventPublisher(self.bus, self._settings.suite_id),
            limits=self._settings.limits,
            test_corp_ids=self._settings.test_corps,
            test_accounts=self._settings.test_account_pairs,
            metrics=self.metrics,
        )
        self.handlers = AuthHandlers(
            self.installs,
            repository,
            suite_id=self._settings.suite_id,
            sessions=EndedSessions(self.store),
            other_suite=lambda kind: self.metrics.other_suite.labels(kind).inc(),
        )
        await self.installs.refresh_metrics()

    def other_suite_events(self, event_type: str) -> float:
        """How many ``event_type`` instructions of another suite were ignored so far."""
        value = self._registry.get_sample_value(
            "wecom_auth_events_other_suite_total", {"type": event_type}
        )
        return value or 0.0

    def subscriptions(self) -> list[Subscription]:
        if self.handlers is None:
            return []
        return [
            Subscription(EVENTS_QUEUE, handler=self.handlers.handle_event),
            Subscription(RPC_AUTH_QUEUE, rpc=self.handlers.answer, prefetch=64),
        ]

    async def cleanup(self) -> None:
        await self._client.close()


PROCESS: Final = ServiceProcess(
    AuthServiceSettings, name=AuthService.name, topology=AUTH_TOPOLOGY, make=AuthService
)


def main() -> None:
    """Entry point of ``python -m auth_service`` and ``wecom-suite auth-service``."""
    PROCESS.main()
