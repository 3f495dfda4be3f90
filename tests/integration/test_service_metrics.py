"""Each standalone service, started as its own process on RabbitMQ, exports the shared
process, platform, GC and build-info series on its /metrics, its known series at 0 from the
start, the suite_ticket without a stand-in value, and its dead letters per queue."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.bus.abc import Message
from shared.bus.product_topology import AUTH_EVENTS_QUEUE, NOTIFY_QUEUE, TOKEN_EVENTS_QUEUE
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY, DEFAULT_EXCHANGE
from shared.version import package_version
from tests.support import rabbitmq
from tests.support.broker import wait_until
from tests.support.process import free_port, http_get, standalone_env, wait_ready
from tests.support.tokens import publish_ticket

pytestmark = pytest.mark.integration

SERVICES = ("gateway", "token-service", "auth-service", "notifier")
READY_TIMEOUT_S = 30.0


def start(service: str, amqp_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`wecom-suite <service>` in sandbox mode on a free port, with SQLite in ``data_dir``."""
    port = free_port()
    env = standalone_env(
        amqp_url, data_dir, drop=("HTTP_",), HTTP_PORT=str(port), LOG_LEVEL="warning"
    )
    process = subprocess.Popen(  # noqa: S603 -- one of SERVICES, our own subcommands
        [sys.executable, "-m", "wecom_suite", service],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, port


def wait_service_ready(process: subprocess.Popen[bytes], port: int, service: str) -> None:
    """Until the service on ``port`` answers /readyz 200."""
    wait_ready(process, f"http://127.0.0.1:{port}", service)


@pytest.fixture(scope="module")
def service_ports(
    module_amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """The four services of the production shape, running side by side on one vhost."""
    started = {
        service: start(service, module_amqp_url, tmp_path_factory.mktemp(service))
        for service in SERVICES
    }
    try:
        for service, (process, port) in started.items():
            wait_service_ready(process, port, service)
        yield {service: port for service, (_, port) in started.items()}
    finally:
        for process, _ in started.values():
            process.terminate()
        for process, _ in started.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.mark.parametrize("service", SERVICES)
def test_service_metrics_carry_process_platform_gc_and_build_info(
    service: str, service_ports: dict[str, int]
) -> None:
    """/metrics of each service has process_*, python_info, python_gc_* and
    wecom_build_info{version} with the installed version."""
    status, body = http_get(f"http://127.0.0.1:{service_ports[service]}/metrics")
    assert status == 200
    samples = {
        family.name: family.samples for family in text_string_to_metric_families(body.decode())
    }
    for name in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "python_info",
        "python_gc_collections",
    ):
        assert samples.get(name), f"{service}: {name} missing"
    assert samples["process_resident_memory_bytes"][0].value > 0
    build = samples["wecom_build_info"]
    assert [(sample.labels, sample.value) for sample in build] == [
        ({"version": package_version()}, 1.0)
    ]


Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(port: int) -> Samples:
    """The service's /metrics: sample name -> sorted labels -> value."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


# Each process's queues with a .dead: the gateway declares the product's three.
DEAD_LETTERING = {
    "gateway": (TOKEN_EVENTS_QUEUE, AUTH_EVENTS_QUEUE, NOTIFY_QUEUE),
    "token-service": (TOKEN_EVENTS_QUEUE,),
    "auth-service": (AUTH_EVENTS_QUEUE,),
    "notifier": (NOTIFY_QUEUE,),
}
# The names these metrics had before units and word forms were made consistent.
OLD_NAMES = ("wecom_api_call_seconds_count", "wecom_tokens_served_total")


@pytest.mark.parametrize("service", SERVICES)
def test_service_metrics_start_at_zero_under_consistent_names(
    service: str, service_ports: dict[str, int]
) -> None:
    """A fresh service exports its dead letters at 0 for each of its queues, and none of the
    renamed metrics' old names."""
    samples = scrape(service_ports[service])
    assert samples["wecom_bus_dead_letters_total"] == {
        (("queue", queue),): 0.0 for queue in DEAD_LETTERING[service]
    }
    assert not set(OLD_NAMES) & set(samples)


def test_gateway_callback_series_exist_before_the_first_callback(
    service_ports: dict[str, int],
) -> None:
    """The gateway's callback counters and durations exist at 0 before any callback."""
    samples = scrape(service_ports["gateway"])
    for route in ("command", "data"):
        for outcome in ("accepted", "duplicate", "verified", "unavailable"):
            key = (("outcome", outcome), ("route", route))
            assert samples["wecom_callbacks_total"][key] == 0.0
        assert samples["wecom_callback_duration_seconds_count"][(("route", route),)] == 0.0


def test_token_service_exports_its_series_at_zero_and_no_ticket_age(
    service_ports: dict[str, int],
) -> None:
    """A token-service that has no ticket says so (present 0) and exports no age at all; its
    served and ticket-update series exist at 0."""
    samples = scrape(service_ports["token-service"])
    assert samples["wecom_suite_ticket_present"] == {(): 0.0}
    assert "wecom_suite_ticket_age_seconds" not in samples
    assert samples["wecom_token_served_total"][(("kind", "suite"), ("source", "refresh"))] == 0
    assert samples["wecom_suite_ticket_updates_total"][(("outcome", "stored"),)] == 0.0


async def test_token_service_ticket_gauges_and_dead_letters_on_a_real_broker(
    amqp_url: str, tmp_path: Path
) -> None:
    """Before a ticket: present 0 and no age series; after one is pushed on the bus: present 1
    and an age. A payload that does not validate is dead-lettered and counted for its queue."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    # A token-service of its own, on a vhost of its own: the module's services must stay
    # fresh for the other tests, whatever order they run in.
    with rabbitmq.fresh_vhost("wecom-ticket-metrics") as url:
        process, port = start("token-service", url, tmp_path)
        try:
            await asyncio.to_thread(wait_service_ready, process, port, "token-service")
            await ticket_and_dead_letter(url, port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def ticket_and_dead_letter(url: str, port: int) -> None:
    before = scrape(port)
    assert before["wecom_suite_ticket_present"] == {(): 0.0}
    assert "wecom_suite_ticket_age_seconds" not in before
    assert before["wecom_bus_dead_letters_total"] == {(("queue", TOKEN_EVENTS_QUEUE),): 0.0}
    bus = RabbitMQBus(url, BASE_TOPOLOGY, connection_name="test-service-metrics")
    await bus.start()
    try:
        await publish_ticket(bus, "ticket-for-the-metrics-test")
        await bus.publish(
            DEFAULT_EXCHANGE,
            TOKEN_EVENTS_QUEUE,
            Message(b"not an envelope", "bad-1", "command.suite_ticket"),
        )

        def seen() -> bool:
            samples = scrape(port)
            dead = samples["wecom_bus_dead_letters_total"][(("queue", TOKEN_EVENTS_QUEUE),)]
            return samples["wecom_suite_ticket_present"] == {(): 1.0} and dead == 1.0

        await wait_until(seen, READY_TIMEOUT_S, "the ticket stored and one dead letter")
    finally:
        await bus.close()
    after = scrape(port)
    [age] = after["wecom_suite_ticket_age_seconds"].values()
    assert 0.0 <= age < READY_TIMEOUT_S
    assert after["wecom_suite_ticket_updates_total"][(("outcome", "stored"),)] == 1.0
