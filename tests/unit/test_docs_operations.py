"""docs/operations.md against the metrics the services register.

An operator writes dashboards and alerts from the doc; a metric the doc does not name is one
nobody watches, and a renamed one silently breaks their alerts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from auth_service.service import AUTH_TOPOLOGY
from gateway.callbacks.metrics import GatewayMetrics
from gateway.service import GATEWAY_TOPOLOGY
from notifier.metrics import NotifierMetrics
from notifier.service import NOTIFIER_TOPOLOGY
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY, Topology
from shared.metrics import new_registry, wecom_call_histogram
from token_service.metrics import TokenMetrics
from token_service.service import TOKEN_TOPOLOGY

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Each family's name as a query uses it: counters with their ``_total``."""
    return {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in registry.collect()
    }


def documented() -> set[str]:
    """The back-quoted names in the first cell of the doc's table rows: the metric rows."""
    names: set[str] = set()
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z][a-z0-9_]*)`", line.split("|")[1]))
    return names


TOPOLOGIES: dict[str, Topology] = {
    "gateway": GATEWAY_TOPOLOGY,
    "token-service": TOKEN_TOPOLOGY,
    "auth-service": AUTH_TOPOLOGY,
    "notifier": NOTIFIER_TOPOLOGY,
}


def registry_of(service: str) -> CollectorRegistry:
    """What ``service``'s process registers: the shared series, its bus's dead-letter counter,
    its WeCom-call histogram and its own metrics."""
    registry = new_registry()
    InProcessBus(BASE_TOPOLOGY.merged(TOPOLOGIES[service]), registry=registry)
    wecom_call_histogram(registry)
    if service == "gateway":
        GatewayMetrics.create(registry)
    elif service == "token-service":
        # With a ticket, as after WeCom's first push: the age series exists only then.
        TokenMetrics.create(registry).ticket.set_ticket(0.0)
    elif service == "notifier":
        NotifierMetrics.create(registry)
    return registry


@pytest.mark.parametrize("service", ["gateway", "token-service", "auth-service", "notifier"])
def test_every_exported_metric_is_documented(service: str) -> None:
    """Each metric family a service registers has a row in docs/operations.md."""
    missing = sorted(exported_names(registry_of(service)) - documented())
    assert not missing, f"{service}: not in docs/operations.md: {missing}"


def test_the_doc_names_no_metric_that_is_not_exported() -> None:
    """No row documents a wecom_* metric that no service registers (a rename left behind)."""
    exported = set().union(*(exported_names(registry_of(service)) for service in TOPOLOGIES))
    stale = sorted(
        name for name in documented() if name.startswith("wecom_") and name not in exported
    )
    assert not stale, f"docs/operations.md names metrics nothing exports: {stale}"
