"""Prometheus helpers: one registry per service instance, with the process, platform, GC and
build-info series every service exports, and the ``/metrics`` body.

A registry per instance (not the process-global default) lets the all-in-one process and
the tests run several services side by side without name clashes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TypeVar
from weakref import WeakKeyDictionary

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from shared.version import package_version

M = TypeVar("M", Counter, Gauge, Histogram)

# Latency buckets tuned for callback and publish paths: sub-millisecond to WeCom's 1 s deadline.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def new_registry() -> CollectorRegistry:
    """A fresh registry that already exports what every service shares.

    Those are the process (``process_*``: CPU, resident memory, open file descriptors, start
    time), platform (``python_info``) and garbage-collector (``python_gc_*``) collectors, and
    ``wecom_build_info{version}``, always 1, so a dashboard can tell which release each
    replica runs.

    Returns:
        A registry of its own: the all-in-one process holds several side by side.
    """
    registry = CollectorRegistry(auto_describe=True)
    # The collectors are stateless readers (of /proc, the interpreter, gc.get_stats()): the
    # library's global instances can sit in any number of registries at once.
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    Gauge(
        "wecom_build_info",
        "The running wecom-suite release (always 1; the version is the label).",
        ["version"],
        registry=registry,
    ).labels(package_version()).set(1)
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition body and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def with_zero_series(metric: M, *label_values: Iterable[str]) -> M:
    """``metric`` with a child for every combination of ``label_values`` (one iterable per
    label, in the metric's label order), so that each known series is exported at 0 from the
    start: a rate or a ratio over it is then 0, not absent, before the first event.

    Args:
        metric: a labelled counter, gauge or histogram.
        label_values: the known values of each label, e.g. ``get_args`` of its ``Literal``.

    Returns:
        ``metric`` itself, for use where it is created.
    """
    for values in itertools.product(*label_values):
        metric.labels(*values)
    return metric


# WeCom calls take tens to hundreds of milliseconds; a slow one takes seconds.
WECOM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WECOM_CALLS: WeakKeyDictionary[CollectorRegistry, Histogram] = WeakKeyDictionary()


def wecom_call_histogram(registry: CollectorRegistry) -> Histogram:
    """``wecom_api_call_duration_seconds{path,outcome}`` of ``registry``: one per registry,
    shared by every service in it (the all-in-one process has several WeCom clients)."""
    histogram = _WECOM_CALLS.get(registry)
    if histogram is None:
        histogram = Histogram(
            "wecom_api_call_duration_seconds",
            "WeCom API call latency by path and outcome (ok, errcode_<n>, unavailable).",
            ["path", "outcome"],
            buckets=WECOM_BUCKETS,
            registry=registry,
        )
        _WECOM_CALLS[registry] = histogram
    return histogram


def wecom_call_observer(registry: CollectorRegistry) -> Callable[[str, str, float], None]:
    """The ``WeComClient`` observer that times each call in :func:`wecom_call_histogram`.

    Args:
        registry: the service's registry.

    Returns:
        ``observer(path, outcome, seconds)``, as ``WeComClient(observer=...)`` takes it.
    """
    histogram = wecom_call_histogram(registry)

    def observe(path: str, outcome: str, seconds: float) -> None:
        histogram.labels(path, outcome).observe(seconds)

    return observe


_DEAD_LETTERS: WeakKeyDictionary[CollectorRegistry, Counter] = WeakKeyDictionary()


def dead_letter_counter(registry: CollectorRegistry, queues: Iterable[str] = ()) -> Counter:
    """``wecom_bus_dead_letters_total{queue}`` of ``registry`` (one per registry), with the
    series of each of ``queues`` present at 0.

    Args:
        registry: the process's registry, the one its bus counts in.
        queues: the queues whose failed messages go to ``<queue>.dead``.

    Returns:
        The counter; ``labels(queue).inc()`` once a message is dead-lettered.
    """
    counter = _DEAD_LETTERS.get(registry)
    if counter is None:
        counter = Counter(
            "wecom_bus_dead_letters",
            "Messages moved to <queue>.dead by a consumer of this process (rejected, a bad "
            "payload, or retries exhausted), by the queue they came from.",
            ["queue"],
            registry=registry,
        )
        _DEAD_LETTERS[registry] = counter
    return with_zero_series(counter, queues)
