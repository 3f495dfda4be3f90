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
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

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
from shared.storage.crypto import API_KEY_FILE_NAME
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


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104


def _pick_port(host: str, port: int) -> int:
    """``port``, or for 0 a port free right now on ``host``.

    Port 0 is resolved before anything is built, so that the banner and every URL derived
    from the port (the public base URL, the simulator's callback URLs) name the port that is
    then bound. Another process could take it in between; binding then fails as "in use".
    """
    if port != 0:
        return port
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def sandbox_simulator_settings(settings: AllInOneSettings) -> SimulatorSettings:
    """The simulator's settings in sandbox mode: unset callback URLs point at this process."""
    sim = load_settings(SimulatorSettings)
    if sim.sim_http_port == 0:
        sim = sim.model_copy(
            update={"sim_http_port": _pick_port(sim.sim_http_host, sim.sim_http_port)}
        )
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
    if settings.http_port == 0:
        settings = settings.model_copy(
            update={"http_port": _pick_port(settings.http_host, settings.http_port)}
        )
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
    bus_component = BusComponent(bus, url=settings.amqp_url)
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
    sim_server: HttpServer | None = None
    if sim_settings is not None:
        # Started after the gateway, so the ticket it pushes at start finds the URL listening.
        sim_app = build_simulator_app(sim_settings, registry=new_registry())
        sim_server = HttpServer(
            sim_app,
            sim_settings.sim_http_host,
            sim_settings.sim_http_port,
            name="simulator",
            port_setting="SIM_HTTP_PORT",
        )
        components.append(sim_server)
        # Last, once auth_service answers: does the simulator know the store's installs?
        components.append(SandboxCoherence(bus, sim_app[STATE_KEY]))
    # Once every server is bound: a port in use stops the process before any URL is shown.
    components.append(
        Banner(
            lambda: _summary(settings, sim_settings, server, sim_server, services),
            human=lambda: settings.log_format != "json" and _stdout_is_terminal(),
        )
    )
    await run_components(components, stop=stop)


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``wecom-suite run`` tells the person who started it."""

    runs: list[str]
    bus: str
    store: str
    links: list[tuple[str, str]]
    internal_api_key_file: str | None
    fields: dict[str, object]


def _summary(
    settings: AllInOneSettings,
    sim_settings: SimulatorSettings | None,
    server: HttpServer,
    sim_server: HttpServer | None,
    services: list[Component],
) -> Summary:
    base = f"http://{_loopback(settings.http_host)}:{server.port or settings.http_port}"
    runs = ["gateway", *(service.name for service in services)]
    # What to open, in the order a newcomer would: add a page here and it is in the banner.
    links: list[tuple[str, str]] = []
    key_file: str | None = None
    fields: dict[str, object] = {}
    if sim_settings is not None:
        sim_base = (
            f"http://{_loopback(sim_settings.sim_http_host)}:"
            f"{sim_server.port if sim_server and sim_server.port else sim_settings.sim_http_port}"
        )
        runs.append("simulator")
        console = console_sign_in_link(settings, base)
        links += [
            ("console (one-click sign-in)", console or f"{base}/console"),
            ("install link", f"{base}/install"),
            ("demo", f"{base}/demo/"),
            ("simulator (the sandbox's WeCom)", sim_base),
        ]
        key_file = str(settings.data_dir / API_KEY_FILE_NAME)
        fields = {
            "suite_id": settings.suite_id,
            "command_callback_url": f"{base}/wecom/command",
            "data_callback_url": f"{base}/wecom/data",
            "credentials": "public sandbox values, see docs/sandbox.md",
            "install_url": f"{base}/install",
            "sign_in_url": f"{base}/oauth/login?next=/demo/",
            "console_url": console,
            "internal_api_key_file": key_file,
            "simulator_state_file": str(sim_settings.sim_state_file),
            "simulator": sim_base,
        }
    else:
        links += [("console", f"{base}/console"), ("install link", f"{base}/install")]
    return Summary(
        runs=runs,
        bus="RabbitMQ (AMQP_URL)" if settings.amqp_url is not None else "in-process",
        store="MongoDB (MONGO_URL)"
        if settings.mongo_url is not None
        else f"SQLite in {settings.data_dir}",
        links=links,
        internal_api_key_file=key_file,
        fields=fields,
    )


def render_summary(summary: Summary) -> str:
    """The banner a person reads on a terminal: what runs, what to open, how to stop."""
    width = max((len(label) for label, _ in summary.links), default=0)
    lines = [
        "",
        f"wecom-suite is running: {', '.join(summary.runs)}",
        f"  bus: {summary.bus}; store: {summary.store}",
    ]
    if summary.fields:
        lines.append("  sandbox mode: public sandbox keys, not for production (docs/sandbox.md)")
    lines.append("")
    lines.append("Open:")
    lines += [f"  {label.ljust(width)}  {url}" for label, url in summary.links]
    if summary.internal_api_key_file is not None:
        lines += ["", f"Internal API key (INTERNAL_API_KEY): {summary.internal_api_key_file}"]
    lines += ["", "Stop: Ctrl-C", ""]
    return "\n".join(lines)


class Banner:
    """The last component: says what runs and what to open, once every server listens.

    On a terminal (and unless ``LOG_FORMAT=json`` asks for JSON) a short human summary;
    otherwise the ``sandbox_mode`` log line, as JSON like every other line.
    """

    name = "banner"

    def __init__(
        self, summary: Callable[[], Summary], *, human: Callable[[], bool] | None = None
    ) -> None:
        self._summary = summary
        self._human = human or _stdout_is_terminal

    async def start(self) -> None:
        summary = self._summary()
        if summary.fields:
            log.info("sandbox_mode", **summary.fields)
        if self._human():
            print(render_summary(summary), flush=True)

    async def stop(self) -> None:
        return None


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
