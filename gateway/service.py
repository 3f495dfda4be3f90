"""The gateway as its own process: its aiohttp app, with the keys it signs and checks with,
on RabbitMQ (see ``shared.component.ServiceProcess``)."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.app import (
    ConsolePages,
    DemoPage,
    InternalApiRoutes,
    MemberPages,
    WebPart,
    build_gateway_app,
)
from gateway.settings import GatewaySettings
from gateway.web.console import sandbox_sign_in_url
from shared.bus.abc import Bus
from shared.bus.product_topology import PRODUCT_TOPOLOGY
from shared.bus.topology import RPC_TOPOLOGY
from shared.component import ServiceProcess
from shared.lifecycle import Readiness
from shared.storage.crypto import load_data_key, load_internal_api_key


def gateway_app(
    settings: GatewaySettings,
    bus: Bus,
    *,
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
) -> web.Application:
    """The gateway's app as a deployment runs it, alone or in ``wecom-suite run``.

    ``DATA_KEY`` signs the sign-in state and session cookies, ``INTERNAL_API_KEY`` guards the
    internal API: both are required with real credentials (generated in sandbox mode, which
    also serves the demo page). The developer console signs in with the internal API key.
    """
    data_key = load_data_key(settings.data_key, settings.data_dir, sandbox=settings.sandbox)
    api_key = load_internal_api_key(
        settings.internal_api_key, settings.data_dir, sandbox=settings.sandbox
    )
    demo: list[WebPart] = [DemoPage()] if settings.sandbox else []
    parts = [
        MemberPages(data_key),
        *demo,
        InternalApiRoutes(api_key),
        ConsolePages(api_key, data_key),
    ]
    return build_gateway_app(settings, bus, web_parts=parts, registry=registry, readiness=readiness)


# The gateway calls rpc.tokens and rpc.auth (sign-in, JS-SDK, installs, internal API), and
# declares every product consumer queue with its bindings: a callback it answers `success`
# before token_service or auth_service ever ran (a first deploy, a fresh broker) waits in
# that service's queue instead of falling through to wecom.events.unrouted (docs/bus.md).
# It is an HTTP service: its own app is the process's server (health and metrics included).
GATEWAY_TOPOLOGY: Final = RPC_TOPOLOGY.merged(PRODUCT_TOPOLOGY)
PROCESS: Final = ServiceProcess(
    GatewaySettings, name="gateway", topology=GATEWAY_TOPOLOGY, app=gateway_app
)


def console_sign_in_link(settings: GatewaySettings, base_url: str) -> str | None:
    """The banner's one-click console sign-in link in sandbox mode (None otherwise): a signed
    token that expires within the hour and carries no key (gateway.web.console)."""
    if not settings.sandbox:
        return None
    data_key = load_data_key(settings.data_key, settings.data_dir, sandbox=True)
    return sandbox_sign_in_url(base_url, data_key)


def main() -> None:
    """Entry point of ``python -m gateway`` and ``wecom-suite gateway``."""
    PROCESS.main()
