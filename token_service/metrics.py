"""token_service's Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from shared.contracts import TokenKind
from shared.metrics import wecom_call_histogram, wecom_call_observer, with_zero_series
from token_service.domain import CachedKind

# Where a served token came from: this replica's memory, the store (another replica's
# refresh), a refresh of this call's own, or another caller's refresh it waited for.
TokenSource = Literal["memory", "store", "refresh", "waited"]
TicketUpdate = Literal["stored", "older", "other_suite"]


class SuiteTicketGauges:
    """``wecom_suite_ticket_present`` (0 or 1) and, only while there is a ticket,
    ``wecom_suite_ticket_age_seconds``, its age at the moment of the scrape.

    No age series before the first ticket: a number standing for "none" would read as an
    age to every query (a ``max()``, a threshold) that does not know it.
    """

    PRESENT = "wecom_suite_ticket_present"
    AGE = "wecom_suite_ticket_age_seconds"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._issued_at: float | None = None

    def set_ticket(self, issued_at: float | None) -> None:
        """The newest ticket's TimeStamp (Unix seconds, WeCom's clock), or None without one."""
        self._issued_at = issued_at

    def describe(self) -> Iterator[Metric]:
        """Both families, so that the registry reserves their names before any ticket."""
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        """The families as they are now (read by ``/metrics``)."""
        yield from self._families(self._issued_at)

    def _families(self, issued_at: float | None) -> Iterator[Metric]:
        present = GaugeMetricFamily(
            self.PRESENT,
            "1 once a suite_ticket is stored, 0 before: suite tokens cannot be fetched without.",
        )
        age = GaugeMetricFamily(
            self.AGE,
            "Age of the newest suite_ticket by WeCom's TimeStamp; absent while there is none. "
            "WeCom pushes every 600 s; above 1200 s pushes are being missed.",
        )
        present.add_metric([], 0.0 if issued_at is None else 1.0)
        yield present
        if issued_at is not None:
            age.add_metric([], max(0.0, self._clock() - issued_at))
        yield age


@dataclass(frozen=True, slots=True)
class TokenMetrics:
    served: Counter
    refreshes: Counter
    lease_waits: Counter
    wecom_seconds: Histogram
    ticket: SuiteTicketGauges
    ticket_updates: Counter
    observe_wecom_call: Callable[[str, str, float], None]
    """The WeComClient observer: latency by API path and outcome."""

    def count_served(self, kind: CachedKind, source: TokenSource) -> None:
        """One token handed out, by where it came from."""
        self.served.labels(kind, source).inc()

    def count_ticket_update(self, outcome: TicketUpdate) -> None:
        """One suite_ticket push, by what became of it."""
        self.ticket_updates.labels(outcome).inc()

    @classmethod
    def create(cls, registry: CollectorRegistry) -> TokenMetrics:
        ticket = SuiteTicketGauges()
        registry.register(ticket)
        cached_kinds = get_args(CachedKind)
        return cls(
            # Every known series is exported at 0 from the start (with_zero_series); error
            # outcomes of refreshes are open-ended and appear when first counted.
            served=with_zero_series(
                Counter(
                    "wecom_token_served",
                    "Tokens handed out, by kind and source (memory, store, refresh, waited).",
                    ["kind", "source"],
                    registry=registry,
                ),
                cached_kinds,
                get_args(TokenSource),
            ),
            refreshes=with_zero_series(
                Counter(
                    "wecom_token_refreshes",
                    "Calls to WeCom's token endpoints, by kind and outcome (ok or the error code).",
                    ["kind", "outcome"],
                    registry=registry,
                ),
                get_args(TokenKind),
                ("ok",),
            ),
            lease_waits=with_zero_series(
                Counter(
                    "wecom_token_lease_waits",
                    "Refreshes this replica left to another replica holding the lease, by kind.",
                    ["kind"],
                    registry=registry,
                ),
                cached_kinds,
            ),
            wecom_seconds=wecom_call_histogram(registry),
            ticket=ticket,
            ticket_updates=with_zero_series(
                Counter(
                    "wecom_suite_ticket_updates",
                    "suite_ticket pushes received, by outcome (stored, older, other_suite).",
                    ["outcome"],
                    registry=registry,
                ),
                get_args(TicketUpdate),
            ),
            observe_wecom_call=wecom_call_observer(registry),
        )
