"""Prometheus helpers: one registry per service instance and the ``/metrics`` handler.

A registry per instance (not the process-global default) lets the all-in-one process and
the tests run several services side by side without name clashes.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

# Latency buckets tuned for callback and publish paths: sub-millisecond to WeCom's 1 s deadline.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def new_registry() -> CollectorRegistry:
    """A fresh registry that also exports the process and platform collectors."""
    return CollectorRegistry(auto_describe=True)


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition body and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


# WeCom calls take tens to hundreds of milliseconds; a slow one takes seconds.
WECOM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WECOM_CALLS: WeakKeyDictionary[CollectorRegistry, Histogram] = WeakKeyDictionary()


def wecom_call_histogram(registry: CollectorRegistry) -> Histogram:
    """``wecom_api_call_seconds{path,outcome}`` of ``registry``: one per registry, shared by
    every service in it (the all-in-one process has several WeCom clients)."""
    histogram = _WECOM_CALLS.get(registry)
    if histogram is None:
        histogram = Histogram(
            "wecom_api_call_seconds",
            "WeCom API call latency by path and outcome.",
            ["path", "outcome"],
            buckets=WECOM_BUCKETS,
            registry=registry,
        )
        _WECOM_CALLS[registry] = histogram
    return histogram
