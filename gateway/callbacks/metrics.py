"""The gateway's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.callbacks.processor import ReceiveIdKind
from shared.metrics import FAST_BUCKETS, with_zero_series
from shared.wecom.events import Route

# How a callback was answered, apart from a rejection (whose outcome is its error code, an
# open set: those series appear when first counted).
CallbackOutcome = Literal["accepted", "duplicate", "verified", "unavailable"]


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    callbacks: Counter
    callback_seconds: Histogram
    publish_seconds: Histogram
    receive_ids: Counter
    replay_cache_entries: Gauge
    # Labelled children looked up once: labels() takes a lock and builds tuples on each call,
    # a visible cost at thousands of callbacks a second.
    _children: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def count_callback(self, route: Route, outcome: CallbackOutcome | str, seconds: float) -> None:
        """Count one answered callback and observe its duration."""
        key = (route, outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.callbacks.labels(route, outcome),
                self.callback_seconds.labels(route),
            )
        counter, histogram = children
        counter.inc()
        histogram.observe(seconds)

    def count_accepted(
        self, route: Route, outcome: CallbackOutcome, kind: ReceiveIdKind, seconds: float
    ) -> None:
        """:meth:`count_callback` and :meth:`count_receive_id` of an accepted callback, in
        one lookup: the path every event takes."""
        key = (route, outcome, kind)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.callbacks.labels(route, outcome),
                self.callback_seconds.labels(route),
                self.receive_ids.labels(route, kind),
            )
        counter, histogram, receive_ids = children
        counter.inc()
        histogram.observe(seconds)
        receive_ids.inc()

    def count_receive_id(self, route: Route, kind: ReceiveIdKind) -> None:
        """Count one receive id seen, by its kind."""
        key = ("receive_id", route, kind)
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = self.receive_ids.labels(route, kind)
        counter.inc()

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GatewayMetrics:
        """The gateway's metrics in ``registry``, every known series present at 0."""
        routes = get_args(Route)
        return cls(
            callbacks=with_zero_series(
                Counter(
                    "wecom_callbacks",
                    "Callback requests by route and outcome (accepted, duplicate, verified, "
                    "unavailable, or the error code)",
                    ["route", "outcome"],
                    registry=registry,
                ),
                routes,
                get_args(CallbackOutcome),
            ),
            callback_seconds=with_zero_series(
                Histogram(
                    "wecom_callback_duration_seconds",
                    "Time from request to answer, by route",
                    ["route"],
                    buckets=FAST_BUCKETS,
                    registry=registry,
                ),
                routes,
            ),
            publish_seconds=Histogram(
                "wecom_bus_publish_duration_seconds",
                "Time for the bus to confirm one event",
                buckets=FAST_BUCKETS,
                registry=registry,
            ),
            receive_ids=with_zero_series(
                Counter(
                    "wecom_callback_receive_ids",
                    "Receive ids seen in decrypted callbacks, by route and kind",
                    ["route", "kind"],
                    registry=registry,
                ),
                routes,
                get_args(ReceiveIdKind),
            ),
            replay_cache_entries=Gauge(
                "wecom_callback_replay_cache_entries",
                "Ids currently remembered for repeat suppression",
                registry=registry,
            ),
        )
