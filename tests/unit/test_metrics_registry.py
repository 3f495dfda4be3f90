"""shared.metrics.new_registry: the process, platform, GC and build-info series every service
exports, in registries that stay independent of each other."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import new_registry, render_metrics
from shared.version import package_version

# Present on Linux (the process collector reads /proc) with CPython (the GC collector).
SHARED_FAMILIES = {
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
    "python_info",
    "python_gc_collections",
    "wecom_build_info",
}


def families(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Each exported family's samples as (labels, value), from the rendered exposition."""
    body, _ = render_metrics(registry)
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(body.decode())
    }


def test_a_new_registry_exports_the_process_platform_gc_and_build_series() -> None:
    """Every service's /metrics carries process, python_info, GC and build-info series."""
    exported = families(new_registry())
    missing = SHARED_FAMILIES - set(exported)
    assert not missing, f"not exported: {sorted(missing)}"
    assert exported["process_resident_memory_bytes"][0][1] > 0


def test_build_info_is_one_series_labelled_with_the_package_version() -> None:
    """wecom_build_info{version} is 1 and names the installed release."""
    assert families(new_registry())["wecom_build_info"] == [({"version": package_version()}, 1.0)]


def test_registries_are_independent() -> None:
    """Two registries (the all-in-one process has several) each export the shared series and
    keep their own service metrics apart."""
    first, second = new_registry(), new_registry()
    Counter("wecom_only_here", "A metric of the first registry only.", registry=first).inc()
    assert "wecom_only_here" in families(first)
    assert "wecom_only_here" not in families(second)
    assert set(families(second)) >= SHARED_FAMILIES
