"""Runs the gateway as its own process: bus (RabbitMQ) and HTTP server under one lifecycle."""

from __future__ import annotations

import asyncio

import structlog

from gateway.app import build_gateway_app, secrets_of
from gateway.settings import GatewaySettings
from shared.bus.factory import BusComponent, create_bus
from shared.bus.topology import BASE_TOPOLOGY
from shared.errors import ConfigurationError
from shared.http import HttpServer
from shared.lifecycle import run_components
from shared.logging import configure_service_logging
from shared.settings import exit_on_configuration_error, load_settings

log = structlog.get_logger(__name__)


async def run_gateway(settings: GatewaySettings) -> None:
    """Serve the callback URLs until SIGTERM."""
    configure_service_logging(settings, "gateway", secrets_of(settings))
    bus = create_bus(settings.amqp_url, BASE_TOPOLOGY, all_in_one=False)
    app = build_gateway_app(settings, bus)
    server = HttpServer(app, settings.http_host, settings.http_port, name="gateway")
    await run_components([BusComponent(bus), server])


def main() -> None:
    """Entry point of ``python -m gateway`` and ``wecom-suite gateway``."""
    settings = load_settings(GatewaySettings)
    try:
        asyncio.run(run_gateway(settings))
    except ConfigurationError as exc:
        exit_on_configuration_error(exc.message)
