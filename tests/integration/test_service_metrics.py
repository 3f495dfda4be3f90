"""Each standalone service, started as its own process on RabbitMQ, exports the shared
process, platform, GC and build-info series on its /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.version import package_version
from tests.support.process import free_port, http_get, wait_ready

pytestmark = pytest.mark.integration

SERVICES = ("gateway", "token-service", "auth-service", "notifier")
READY_TIMEOUT_S = 30.0


def start(service: str, amqp_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`wecom-suite <service>` in sandbox mode on a free port, with SQLite in ``data_dir``."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "AMQP_", "MONGO_", "DATA_", "HTTP_"))
    }
    env.update(
        {
            "AMQP_URL": amqp_url,
            # Sandbox mode on purpose: a standalone service needs it asked for explicitly.
            "WECOM_SANDBOX": "1",
            "DATA_DIR": str(data_dir),
            "HTTP_PORT": str(port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "warning",
        }
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
