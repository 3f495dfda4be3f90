"""The production guard's rules without processes: WECOM_SANDBOX in the settings, and sandbox
mode made visible (a warning, /readyz, /metrics). Processes: tests/e2e/test_production_guard.py."""

from __future__ import annotations

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
from shared.settings import describe_validation_error

GOOD_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


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
