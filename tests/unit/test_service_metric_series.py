"""The services' metric names and series: units in the names, every known labelled series at 0
from the start, no stand-in value for a missing suite_ticket, dead letters per queue."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from gateway.callbacks.metrics import GatewayMetrics
from notifier.metrics import NotifierMetrics
from shared.bus.inprocess import InProcessBus
from shared.bus.product_topology import PRODUCT_TOPOLOGY
from shared.bus.topology import BASE_TOPOLOGY
from shared.metrics import (
    dead_letter_counter,
    new_registry,
    render_metrics,
    wecom_call_observer,
    with_zero_series,
)
from token_service.metrics import SuiteTicketGauges, TokenMetrics

ROUTES = ("command", "data")
TOKEN_KINDS = ("suite", "provider", "corp", "jsapi", "agent_jsapi", "pre_auth_code")
CACHED_KINDS = ("suite", "provider", "corp", "jsapi", "agent_jsapi")
SOURCES = ("memory", "store", "refresh", "waited")


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each sample of the rendered /metrics body: name -> sorted labels -> value."""
    body, _ = render_metrics(registry)
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_gateway_series_are_present_at_zero_before_any_callback() -> None:
    """Each route × answered outcome, each route's duration and each route × receive-id kind
    is exported at 0 by a fresh gateway."""
    registry = new_registry()
    GatewayMetrics.create(registry)
    samples = scrape(registry)
    callbacks = samples["wecom_callbacks_total"]
    for route in ROUTES:
        for outcome in ("accepted", "duplicate", "verified", "unavailable"):
            assert callbacks[labels(route=route, outcome=outcome)] == 0.0
        assert samples["wecom_callback_duration_seconds_count"][labels(route=route)] == 0.0
    kinds = ("empty", "suite_id", "provider_corp_id", "message_corp_id", "listed", "unlisted")
    assert samples["wecom_callback_receive_ids_total"] == {
        labels(route=route, kind=kind): 0.0 for route in ROUTES for kind in kinds
    }
    assert len(callbacks) == 8  # no rejection codes until one happens


def test_gateway_counts_land_in_the_zero_initialised_series() -> None:
    """Counting a callback increments the pre-created series (one series per label set)."""
    registry = new_registry()
    metrics = GatewayMetrics.create(registry)
    metrics.count_accepted("command", "accepted", "suite_id", 0.01)
    metrics.count_callback("data", "signature_invalid", 0.002)
    samples = scrape(registry)
    assert samples["wecom_callbacks_total"][labels(route="command", outcome="accepted")] == 1.0
    assert samples["wecom_callbacks_total"][labels(route="data", outcome="accepted")] == 0.0
    assert (
        samples["wecom_callbacks_total"][labels(route="data", outcome="signature_invalid")] == 1.0
    )
    assert (
        samples["wecom_callback_receive_ids_total"][labels(route="command", kind="suite_id")] == 1.0
    )


def test_token_series_are_present_at_zero_under_their_new_names() -> None:
    """token-service exports wecom_token_served_total (not wecom_tokens_served_total) and its
    refresh, lease-wait and ticket-update series at 0 for every known label."""
    registry = new_registry()
    TokenMetrics.create(registry)
    samples = scrape(registry)
    assert "wecom_tokens_served_total" not in samples
    served = samples["wecom_token_served_total"]
    assert set(served) == {labels(kind=k, source=s) for k in CACHED_KINDS for s in SOURCES}
    assert set(served.values()) == {0.0}
    refreshes = samples["wecom_token_refreshes_total"]
    assert refreshes == {labels(kind=kind, outcome="ok"): 0.0 for kind in TOKEN_KINDS}
    assert samples["wecom_token_lease_waits_total"] == {
        labels(kind=kind): 0.0 for kind in CACHED_KINDS
    }
    assert samples["wecom_suite_ticket_updates_total"] == {
        labels(outcome=outcome): 0.0 for outcome in ("stored", "older", "other_suite")
    }


def test_no_ticket_is_present_zero_and_no_age_series() -> None:
    """Before a ticket: wecom_suite_ticket_present 0 and no age series (never -1); with one,
    present 1 and its age at scrape time; without it again, the age series is gone."""
    registry = CollectorRegistry()
    now = [1_000_000.0]
    gauges = SuiteTicketGauges(clock=lambda: now[0])
    registry.register(gauges)
    before = scrape(registry)
    assert before["wecom_suite_ticket_present"] == {(): 0.0}
    assert "wecom_suite_ticket_age_seconds" not in before

    gauges.set_ticket(now[0] - 90)
    assert scrape(registry)["wecom_suite_ticket_age_seconds"] == {(): 90.0}
    now[0] += 30  # the age grows between scrapes without anyone setting it
    after = scrape(registry)
    assert after["wecom_suite_ticket_age_seconds"] == {(): 120.0}
    assert after["wecom_suite_ticket_present"] == {(): 1.0}

    gauges.set_ticket(None)
    gone = scrape(registry)
    assert "wecom_suite_ticket_age_seconds" not in gone
    assert gone["wecom_suite_ticket_present"] == {(): 0.0}


def test_the_ticket_gauges_reserve_their_names() -> None:
    """Another metric cannot take the ticket's names, even before any ticket is known."""
    registry = new_registry()
    TokenMetrics.create(registry)
    with pytest.raises(ValueError, match="wecom_suite_ticket"):
        registry.register(SuiteTicketGauges())


def test_wecom_calls_are_timed_in_wecom_api_call_duration_seconds() -> None:
    """The shared WeCom-call observer feeds wecom_api_call_duration_seconds{path,outcome}."""
    registry = new_registry()
    observe = wecom_call_observer(registry)
    observe("/cgi-bin/service/get_suite_token", "ok", 0.2)
    wecom_call_observer(registry)("/cgi-bin/service/get_suite_token", "ok", 0.3)
    samples = scrape(registry)
    assert "wecom_api_call_seconds_count" not in samples
    key = labels(path="/cgi-bin/service/get_suite_token", outcome="ok")
    assert samples["wecom_api_call_duration_seconds_count"][key] == 2.0
    assert samples["wecom_api_call_duration_seconds_sum"][key] == 0.5


def test_a_bus_exports_dead_letters_at_zero_for_each_dead_lettering_queue() -> None:
    """A bus built with the process's registry exports wecom_bus_dead_letters_total{queue}
    at 0 for the product queues, and for no queue without a ``.dead``."""
    registry = new_registry()
    InProcessBus(BASE_TOPOLOGY.merged(PRODUCT_TOPOLOGY), registry=registry)
    assert scrape(registry)["wecom_bus_dead_letters_total"] == {
        labels(queue=queue): 0.0
        for queue in ("token_service.events", "auth_service.events", "notifier.requests")
    }


def test_dead_letter_counter_is_one_per_registry() -> None:
    """Asking twice for a registry's counter returns the same one, with both queue sets."""
    registry = CollectorRegistry()
    first = dead_letter_counter(registry, ["a"])
    assert dead_letter_counter(registry, ["b"]) is first
    assert set(scrape(registry)["wecom_bus_dead_letters_total"]) == {
        labels(queue="a"),
        labels(queue="b"),
    }


def test_with_zero_series_creates_every_combination() -> None:
    """with_zero_series makes one series per combination of the given label values."""
    registry = CollectorRegistry()
    with_zero_series(Counter("x", "x", ["a", "b"], registry=registry), ("1", "2"), ("y",))
    assert scrape(registry)["x_total"] == {labels(a="1", b="y"): 0.0, labels(a="2", b="y"): 0.0}


def test_the_notifiers_known_series_exist_at_zero_from_the_start() -> None:
    """Every notification status, retry reason, limit window and media source is exported at
    0 before the first event, and WeCom calls go to the one shared histogram."""
    registry = new_registry()
    NotifierMetrics.create(registry)
    for status in ("sent", "partial", "failed", "expired"):
        assert registry.get_sample_value("wecom_notify_results_total", {"status": status}) == 0
    for reason in ("busy", "rate_limited", "unavailable", "token", "claimed_elsewhere"):
        assert registry.get_sample_value("wecom_notify_retries_total", {"reason": reason}) == 0
    for window in ("member", "app"):
        for how in ("held", "scheduled"):
            labels = {"window": window, "how": how}
            assert registry.get_sample_value("wecom_notify_limit_waits_total", labels) == 0
    assert registry.get_sample_value("wecom_notify_media_total", {"source": "cached"}) == 0
    assert registry.get_sample_value("wecom_notify_retries_total", {"reason": "permanent"}) is None
