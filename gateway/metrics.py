"""The gateway's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import FAST_BUCKETS


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    callbacks: Counter
    callback_seconds: Histogram
    publish_seconds: Histogram
    receive_ids: Counter
    replay_cache_entries: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GatewayMetrics:
        return cls(
            callbacks=Counter(
                "wecom_callbacks",
                "Callback requests by route and outcome (accepted, duplicate, verified, "
                "unavailable, or the error code)",
                ["route", "outcome"],
                registry=registry,
            ),
            callback_seconds=Histogram(
                "wecom_callback_duration_seconds",
                "Time from request to answer, by route",
                ["route"],
                buckets=FAST_BUCKETS,
                registry=registry,
            ),
            publish_seconds=Histogram(
                "wecom_bus_publish_duration_seconds",
                "Time for the bus to confirm one event",
                buckets=FAST_BUCKETS,
                registry=registry,
            ),
            receive_ids=Counter(
                "wecom_callback_receive_ids",
                "Receive ids seen in decrypted callbacks, by route and kind",
                ["route", "kind"],
                registry=registry,
            ),
            replay_cache_entries=Gauge(
                "wecom_callback_replay_cache_entries",
                "Ids currently remembered for repeat suppression",
                registry=registry,
            ),
        )
