"""The production guard: a standalone service never falls into sandbox mode by omission, the
standalone simulator never signs with real credentials by accident, and sandbox mode is
always visible (a warning, /readyz, /metrics)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from shared.http import add_health_routes
from shared.lifecycle import Readiness
from shared.sandbox import mark_sandbox_mode
from shared.settings import SANDBOX_REFUSED, describe_validation_error
from simulator.service import REAL_CREDENTIALS_REFUSED
from tests.support.process import http_get, wecom_suite_run

GOOD_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
REAL = {
    "WECOM_SUITE_ID": "wwrealsuite",
    "WECOM_SUITE_SECRET": "real-secret-value",
    "WECOM_TOKEN": "realtoken",
    "WECOM_ENCODING_AES_KEY": GOOD_KEY,
}
STANDALONE = [
    ["-m", "gateway"],
    ["-m", "token_service"],
    ["-m", "auth_service"],
    ["-m", "notifier"],
    ["-m", "wecom_suite", "simulator"],
]


def start(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with only ``env`` (plus PATH); it must exit on its own."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json"}
    return subprocess.run(  # noqa: S603 -- fixed arguments, no shell
        [sys.executable, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", STANDALONE, ids=lambda args: args[-1])
def test_a_standalone_service_without_suite_id_refuses_to_start(args: list[str]) -> None:
    """No WECOM_SUITE_ID and no WECOM_SANDBOX=1: exit 2 with one line naming both."""
    result = start(args, {"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"configuration error: {SANDBOX_REFUSED}"]
    assert "WECOM_SUITE_ID" in SANDBOX_REFUSED
    assert "WECOM_SANDBOX=1" in SANDBOX_REFUSED


def test_the_standalone_simulator_refuses_real_credentials() -> None:
    """With real WECOM_* credentials the simulator would sign callbacks with them: exit 2."""
    result = start(["-m", "wecom_suite", "simulator"], REAL)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: {REAL_CREDENTIALS_REFUSED}"
    ]
    assert "SIM_ALLOW_REAL_CREDENTIALS=1" in REAL_CREDENTIALS_REFUSED
    assert REAL["WECOM_SUITE_SECRET"] not in result.stderr


def test_sandbox_asked_for_with_a_suite_id_is_refused() -> None:
    """WECOM_SANDBOX=1 next to a WECOM_SUITE_ID is a contradiction, named, not guessed at."""
    with pytest.raises(ValidationError) as info:
        GatewaySettings(
            wecom_sandbox=True,
            wecom_suite_id="ww123",
            wecom_suite_secret="s",
            wecom_token="t",
            wecom_encoding_aes_key=GOOD_KEY,
        )
    line = describe_validation_error(info.value)
    assert "WECOM_SANDBOX=1" in line
    assert "WECOM_SUITE_ID" in line


def test_explicit_sandbox_is_still_sandbox_mode() -> None:
    """WECOM_SANDBOX=1 changes nothing but the permission: the public values apply."""
    settings = GatewaySettings(wecom_sandbox=True)
    assert settings.sandbox
    real = GatewaySettings(
        wecom_suite_id="ww123",
        wecom_suite_secret="s",
        wecom_token="t",
        wecom_encoding_aes_key=GOOD_KEY,
    )
    assert real.sandbox is False


async def test_sandbox_mode_is_on_readyz_metrics_and_in_a_warning() -> None:
    """mark_sandbox_mode: wecom_sandbox_mode 1, /readyz sandbox_mode true, one warning."""
    registry = CollectorRegistry()
    readiness = Readiness()
    with structlog.testing.capture_logs() as logs:
        mark_sandbox_mode("svc", sandbox=True, registry=registry, readiness=readiness)
    assert [(e["event"], e["log_level"], e["service"]) for e in logs] == [
        ("sandbox_mode_public_keys", "warning", "svc")
    ]
    app = web.Application()
    add_health_routes(app, readiness, registry)
    async with TestClient(TestServer(app)) as client:
        ready = await (await client.get("/readyz")).json()
        metrics = await (await client.get("/metrics")).text()
    assert ready["sandbox_mode"] is True
    assert "wecom_sandbox_mode 1.0" in metrics


async def test_real_credentials_show_no_sandbox_mode() -> None:
    """Without the sandbox keys: the gauge is 0, /readyz says false, nothing is warned."""
    registry = CollectorRegistry()
    readiness = Readiness()
    with structlog.testing.capture_logs() as logs:
        mark_sandbox_mode("svc", sandbox=False, registry=registry, readiness=readiness)
    assert logs == []
    assert registry.get_sample_value("wecom_sandbox_mode") == 0
    assert readiness.sandbox_mode is False


def test_wecom_suite_run_keeps_sandbox_as_its_default_and_says_so() -> None:
    """`wecom-suite run` without credentials or WECOM_SANDBOX starts, in visible sandbox mode."""
    with wecom_suite_run() as (_, base):
        status, body = http_get(base + "/readyz")
        assert status == 200
        assert json.loads(body)["sandbox_mode"] is True
        _, metrics = http_get(base + "/metrics")
    assert "wecom_sandbox_mode 1.0" in metrics.decode()
