"""``wecom-suite run``: every service in one process on the embedded defaults.

That is the gateway, token_service, auth_service and the notifier on the in-process bus (or
RabbitMQ with ``AMQP_URL``) and the SQLite store in ``DATA_DIR`` (or MongoDB with
``MONGO_URL``). In sandbox mode (no ``WECOM_SUITE_ID``) the callback
URLs accept callbacks signed with the public sandbox credentials of ``shared.sandbox``, and
the bundled WeCom simulator runs alongside on ``SIM_HTTP_PORT``, pushing its callbacks to this
process's own callback URLs. With real credentials the simulator never starts.
"""

from __future__ import annotations

import asyncio

import structlog

from auth_service.service import AUTH_TOPOLOGY, AuthService
from auth_service.settings import AuthSettings
from gateway.service import console_sign_in_link, gateway_app
from gateway.settings import GatewaySettings
from notifier.service import NOTIFIER_TOPOLOGY, NotifierService
from notifier.settings import NotifierSettings
from shared.bus.factory import BusComponent, create_bus
from shared.bus.topology import BASE_TOPOLOGY
from shared.http import HttpServer, server_for
from shared.lifecycle import Component, Readiness, run_components
from shared.logging import configure_service_logging
from shared.metrics import new_registry
from shared.sandbox import mark_sandbox_mode
from shared.settings import load_settings
from simulator.app import STATE_KEY, build_simulator_app
from simulator.settings import SimulatorSettings
from token_service.service import TOKEN_TOPOLOGY, TokenService
from token_service.settings import TokenSettings
from wecom_suite.sandbox_check import SandboxCoherence

log = structlog.get_logger(__name__)


class AllInOneSettings(GatewaySettings, TokenSettings, AuthSettings, NotifierSettings):
    """The union of every bundled service's settings (one environment, one process)."""


def _local_base(settings: AllInOneSettings) -> str:
    # A wildcard bind address is not something to connect to; loopback reaches it.
    host = "127.0.0.1" if settings.http_host in ("", "0.0.0.0", "::") else settings.http_host  # noqa: S104
    return f"http://{host}:{settings.http_port}"


def sandbox_simulator_settings(settings: AllInOneSettings) -> SimulatorSettings:
    """The simulator's settings in sandbox mode: unset callback URLs point at this process."""
    sim = load_settings(SimulatorSettings)
    gateway = _local_base(settings)
    update: dict[str, object] = {}
    if sim.sim_command_url is None:
        update["sim_command_url"] = f"{gateway}/wecom/command"
    if sim.sim_data_url is None:
        update["sim_data_url"] = f"{gateway}/wecom/data"
    if "sim_install_redirect_url" not in sim.model_fields_set:
        update["sim_install_redirect_url"] = f"{gateway}/install/complete"
    if "sim_state_file" not in sim.model_fields_set:
        # The sandbox survives a restart: the simulator's state lives beside the store.
        update["sim_state_file"] = settings.data_dir / "simulator-state.json"
    if "sim_trusted_domain" not in sim.model_fields_set:
        # OAuth redirects come back to the gateway's public base URL (see run_all below).
        public = settings.public_base_url if "public_base_url" in settings.model_fields_set else ""
        update["sim_trusted_domain"] = (public or gateway).split("://", 1)[-1].split("/", 1)[0]
    return sim.model_copy(update=update)


async def run_all(settings: AllInOneSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run every bundled service until SIGTERM or Ctrl-C (or until ``stop`` is set)."""
    sim_settings = sandbox_simulator_settings(settings) if settings.sandbox else None
    if sim_settings is not None:
        if settings.wecom_api_base is None:
            # The sandbox's WeCom is the bundled simulator, wherever SIM_HTTP_PORT put it.
            sim_host = sim_settings.sim_http_host
            if sim_host in ("", "0.0.0.0", "::"):  # noqa: S104
                sim_host = "127.0.0.1"
            settings = settings.model_copy(
                update={"wecom_api_base": f"http://{sim_host}:{sim_settings.sim_http_port}"}
            )
        if settings.wecom_oauth_base is None:
            # The simulator serves the OAuth authorize page too.
            settings = settings.model_copy(update={"wecom_oauth_base": settings.api_base})
        if settings.wecom_install_base is None:
            # … and the install page.
            settings = settings.model_copy(update={"wecom_install_base": settings.api_base})
        if "public_base_url" not in settings.model_fields_set:
            # OAuth redirects come back to this process, wherever HTTP_PORT put it.
            settings = settings.model_copy(update={"public_base_url": _local_base(settings)})
    configure_service_logging(settings, "wecom-suite", also=[sim_settings])
    topology = BASE_TOPOLOGY.merged(TOKEN_TOPOLOGY, AUTH_TOPOLOGY, NOTIFIER_TOPOLOGY)
    registry = new_registry()
    bus = create_bus(settings.amqp_url, topology, all_in_one=True, registry=registry)
    bus_component = BusComponent(bus)
    readiness = Readiness()
    # The newcomer path: sandbox mode is the default here, but never a silent one.
    mark_sandbox_mode(
        "wecom-suite", sandbox=settings.sandbox, registry=registry, readiness=readiness
    )
    app = gateway_app(settings, bus, registry=registry, readiness=readiness)
    server = server_for(app, settings, name="gateway")
    # The services share one store (one SQLite file, or one MongoDB database).
    services: list[Component] = [
        make(settings, bus, bus_component, registry=registry, readiness=readiness)
        for make in (TokenService, AuthService, NotifierService)
    ]
    components: list[Component] = [bus_component, *services, server]
    if sim_settings is not None:
        # Started after the gateway, so the ticket it pushes at start finds the URL listening.
        sim_app = build_simulator_app(sim_settings, registry=new_registry())
        components.append(
            HttpServer(
                sim_app, sim_settings.sim_http_host, sim_settings.sim_http_port, name="simulator"
            )
        )
        # Last, once auth_service answers: does the simulator know the store's installs?
        components.append(SandboxCoherence(bus, sim_app[STATE_KEY]))
        base = f"http://{settings.http_host}:{settings.http_port}"
        log.info(
            "sandbox_mode",
            suite_id=settings.suite_id,
            command_callback_url=f"{base}/wecom/command",
            data_callback_url=f"{base}/wecom/data",
            credentials="public sandbox values, see docs/sandbox.md",
            install_url=f"{base}/install",
            sign_in_url=f"{base}/oauth/login?next=/demo/",
            console_url=console_sign_in_link(settings, _local_base(settings)),
            internal_api_key_file=str(settings.data_dir / "internal-api.key"),
            simulator_state_file=str(sim_settings.sim_state_file),
            simulator=f"http://{sim_settings.sim_http_host}:{sim_settings.sim_http_port}"
            if sim_settings is not None
            else None,
        )
    await run_components(components, stop=stop)
