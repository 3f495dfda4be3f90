"""Runs the gateway as its own process: bus (RabbitMQ) and HTTP server under one lifecycle."""

from __future__ import annotations

import asyncio

import structlog

from gateway.app import build_gateway_app, secrets_of
from gateway.settings import GatewaySettings
from shared.bus.factory import BusComponent, create_bus
from shared.bus.topology import BASE_TOPOLOGY, RPC_TOPOLOGY
from shared.errors import ConfigurationError
from shared.http import HttpServer
from shared.lifecycle import run_components
from shared.logging import configure_service_logging
from shared.settings import exit_on_configuration_error, load_settings
from shared.storage.crypto import load_data_key, load_internal_api_key

log = structlog.get_logger(__name__)


async def run_gateway(settings: GatewaySettings) -> None:
    """Serve the callback URLs, member sign-in and JS-SDK signatures until SIGTERM."""
    configure_service_logging(settings, "gateway", secrets_of(settings))
    # Signs the sign-in state and session cookies; required with real credentials.
    data_key = load_data_key(settings.data_key, settings.data_dir, sandbox=settings.sandbox)
    # The gateway calls rpc.tokens and rpc.auth (sign-in, JS-SDK, installs, internal API).
    bus = create_bus(settings.amqp_url, BASE_TOPOLOGY.merged(RPC_TOPOLOGY), all_in_one=False)
    api_key = load_internal_api_key(
        settings.internal_api_key, settings.data_dir, sandbox=settings.sandbox
    )
    app = build_gateway_app(
        settings,
        bus,
        data_key=data_key,
        serve_demo=settings.sandbox,
        internal_api_key=api_key,
    )
    server = HttpServer(
        app,
        settings.http_host,
        settings.http_port,
        name="gateway",
        header_timeout_s=settings.http_header_timeout_s,
        max_connections=settings.http_max_connections,
    )
    await run_components([BusComponent(bus), server])


def main() -> None:
    """Entry point of ``python -m gateway`` and ``wecom-suite gateway``."""
    settings = load_settings(GatewaySettings)
    try:
        asyncio.run(run_gateway(settings))
    except ConfigurationError as exc:
        exit_on_configuration_error(exc.message)
