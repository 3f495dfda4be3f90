"""``wecom-suite run``: every service in one process on the embedded defaults.

Today that is the gateway on the in-process bus (or RabbitMQ with ``AMQP_URL``); each
service joins here as its issue lands. In sandbox mode (no ``WECOM_SUITE_ID``) the callback
URLs accept callbacks signed with the public sandbox credentials of ``shared.sandbox``.
"""

from __future__ import annotations

import structlog

from gateway.app import build_gateway_app, secrets_of
from gateway.settings import GatewaySettings
from shared.bus.factory import BusComponent, create_bus
from shared.bus.topology import BASE_TOPOLOGY
from shared.http import HttpServer
from shared.lifecycle import Readiness, run_components
from shared.logging import configure_logging
from shared.metrics import new_registry
from shared.version import package_version

log = structlog.get_logger(__name__)


class AllInOneSettings(GatewaySettings):
    """The union of every bundled service's settings (one environment, one process)."""


async def run_all(settings: AllInOneSettings) -> None:
    """Run every bundled service until SIGTERM or Ctrl-C."""
    configure_logging(
        settings.log_level,
        settings.log_format,
        service="wecom-suite",
        version=package_version(),
        secrets=secrets_of(settings),
    )
    bus = create_bus(settings.amqp_url, BASE_TOPOLOGY, all_in_one=True)
    readiness = Readiness()
    app = build_gateway_app(settings, bus, registry=new_registry(), readiness=readiness)
    server = HttpServer(app, settings.http_host, settings.http_port, name="gateway")
    if settings.sandbox:
        base = f"http://{settings.http_host}:{settings.http_port}"
        log.info(
            "sandbox_mode",
            suite_id=settings.suite_id,
            command_callback_url=f"{base}/wecom/command",
            data_callback_url=f"{base}/wecom/data",
            credentials="public sandbox values, see docs/sandbox.md",
        )
    await run_components([BusComponent(bus), server])
