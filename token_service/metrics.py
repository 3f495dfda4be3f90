"""token_service's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import wecom_call_histogram


@dataclass(frozen=True, slots=True)
class TokenMetrics:
    served: Counter
    refreshes: Counter
    lease_waits: Counter
    wecom_seconds: Histogram
    ticket_age: Gauge
    ticket_updates: Counter

    def observe_wecom_call(self, path: str, outcome: str, seconds: float) -> None:
        """The WeComClient observer: latency by API path and outcome."""
        self.wecom_seconds.labels(path, outcome).observe(seconds)

    @classmethod
    def create(cls, registry: CollectorRegistry) -> TokenMetrics:
        return cls(
            served=Counter(
                "wecom_tokens_served",
                "Tokens handed out, by kind and source (memory, store, refresh, waited).",
                ["kind", "source"],
                registry=registry,
            ),
            refreshes=Counter(
                "wecom_token_refreshes",
                "Calls to WeCom's token endpoints, by kind and outcome (ok or the error code).",
                ["kind", "outcome"],
                registry=registry,
            ),
            lease_waits=Counter(
                "wecom_token_lease_waits",
                "Refreshes this replica left to another replica holding the lease, by kind.",
                ["kind"],
                registry=registry,
            ),
            wecom_seconds=wecom_call_histogram(registry),
            ticket_age=Gauge(
                "wecom_suite_ticket_age_seconds",
                "Age of the newest suite_ticket by WeCom's TimeStamp (-1: none yet). WeCom "
                "pushes every 600 s; above 1200 s pushes are being missed.",
                registry=registry,
            ),
            ticket_updates=Counter(
                "wecom_suite_ticket_updates",
                "suite_ticket pushes received, by outcome (stored, older, other_suite).",
                ["outcome"],
                registry=registry,
            ),
        )
