"""Wiring of token_service: store, WeCom client, manager and handlers as one lifecycle
component, and the parts of its standalone process (see ``shared.component.ServiceProcess``)."""

from __future__ import annotations

import asyncio
import time
from typing import Final

import structlog
from prometheus_client import CollectorRegistry

from shared.bus.abc import Bus
from shared.bus.factory import BusComponent
from shared.bus.product_topology import TOKEN_EVENTS_QUEUE, TOKEN_EVENTS_SPEC
from shared.bus.topology import RPC_TOKENS_QUEUE, RPC_TOPOLOGY, Topology
from shared.component import BusService, ServiceProcess, Subscription
from shared.lifecycle import Readiness
from shared.metrics import new_registry
from shared.storage.abc import DocumentStore
from shared.storage.crypto import secret_box_for
from shared.storage.factory import create_service_store
from shared.wecom.api import WeComClient
from token_service.domain import ticket_age_s
from token_service.fetcher import TokenFetcher
from token_service.handlers import TokenHandlers
from token_service.manager import TokenManager
from token_service.metrics import TokenMetrics
from token_service.settings import TokenServiceSettings, TokenSettings
from token_service.store import COLLECTIONS, StoredTokens

log = structlog.get_logger(__name__)

# The queue and its bindings are the product's (shared.bus.product_topology): the gateway
# declares the same spec, so what it accepts before this service first starts is kept.
EVENTS_QUEUE: Final = TOKEN_EVENTS_QUEUE
TOKEN_TOPOLOGY: Final = RPC_TOPOLOGY.merged(Topology(queues=(TOKEN_EVENTS_SPEC,)))
# A cached token is answered in microseconds; most in-flight requests wait on one refresh.
RPC_PREFETCH: Final = 256
_TICKET_CHECK_INTERVAL_S: Final = 60.0


class TokenService(BusService):
    """The component: the event consumer and the ``rpc.tokens`` server once the bus is up,
    and a watch on the suite_ticket's age."""

    name = "token_service"

    def __init__(
        self,
        settings: TokenSettings,
        bus: Bus,
        bus_component: BusComponent,
        *,
        store: DocumentStore | None = None,
        registry: CollectorRegistry | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        super().__init__(
            bus,
            bus_component,
            store or create_service_store(settings, COLLECTIONS),
            readiness,
        )
        self._settings = settings
        self.metrics = TokenMetrics.create(registry or new_registry())
        self._client = WeComClient(
            settings.api_base,
            timeout_s=settings.wecom_api_timeout_s,
            observer=self.metrics.observe_wecom_call,
        )
        self.manager: TokenManager | None = None
        self.handlers: TokenHandlers | None = None

    async def prepare(self) -> None:
        box = secret_box_for(self._settings)
        repository = StoredTokens(self.store, box)
        fetcher = TokenFetcher(
            self._client,
            suite_id=self._settings.suite_id,
            suite_secret=self._settings.suite_secret,
            provider_corpid=self._settings.provider_corpid,
            provider_secret=self._settings.provider_secret,
        )
        self.manager = TokenManager(
            repository,
            fetcher,
            self.metrics,
            margin_s=self._settings.token_refresh_margin_s,
            lease_s=self._settings.token_lease_s,
            wait_s=self._settings.token_wait_s,
        )
        self.handlers = TokenHandlers(
            self.manager, repository, box, self.metrics, suite_id=self._settings.suite_id
        )
        self.spawn(self._watch_ticket(repository), "token-ticket-age")

    def subscriptions(self) -> list[Subscription]:
        if self.handlers is None:
            return []
        return [
            Subscription(EVENTS_QUEUE, handler=self.handlers.handle_event),
            Subscription(RPC_TOKENS_QUEUE, rpc=self.handlers.answer, prefetch=RPC_PREFETCH),
        ]

    async def cleanup(self) -> None:
        await self._client.close()

    async def _watch_ticket(self, repository: StoredTokens) -> None:
        """Export the ticket's age and warn when WeCom's pushes stop arriving: the ticket
        dies 30 min after issue and no WeCom SDK tells anyone before calls start failing."""
        while True:
            try:
                ticket = await repository.get_ticket()
            except Exception:
                log.exception("suite_ticket_check_failed")
            else:
                # Another replica may have stored a newer one: the store is the truth.
                self.metrics.ticket.set_ticket(None if ticket is None else ticket.timestamp)
                age = ticket_age_s(ticket, time.time())
                if age is not None and age > self._settings.token_ticket_warn_age_s:
                    log.warning(
                        "suite_ticket_old",
                        age_s=round(age),
                        operator_action="WeCom pushes a suite_ticket every 10 minutes; check "
                        "that the instruction callback URL is reachable from WeCom and the "
                        "gateway is publishing command.suite_ticket",
                    )
            await asyncio.sleep(_TICKET_CHECK_INTERVAL_S)


PROCESS: Final = ServiceProcess(
    TokenServiceSettings, name=TokenService.name, topology=TOKEN_TOPOLOGY, make=TokenService
)


def main() -> None:
    """Entry point of ``python -m token_service`` and ``wecom-suite token-service``."""
    PROCESS.main()
