"""Runs the simulator as its own process: one HTTP server under the shared lifecycle."""

from __future__ import annotations

from typing import Final

import structlog

from shared.component import service_main
from shared.errors import ConfigurationError
from shared.http import HttpServer
from shared.lifecycle import Readiness, run_components
from shared.logging import configure_service_logging
from shared.metrics import new_registry
from shared.sandbox import mark_sandbox_mode
from simulator.app import build_simulator_app
from simulator.settings import SimulatorSettings

log = structlog.get_logger(__name__)

REAL_CREDENTIALS_REFUSED: Final = (
    "WECOM_SUITE_ID is set: the simulator would push callbacks signed with the app's real "
    "credentials; unset the WECOM_* credentials (and set WECOM_SANDBOX=1), or set "
    "SIM_ALLOW_REAL_CREDENTIALS=1 if that is what you want"
)


async def run_simulator(settings: SimulatorSettings) -> None:
    """Serve WeCom's API and the control API until SIGTERM.

    Raises:
        ConfigurationError: real credentials are configured and ``SIM_ALLOW_REAL_CREDENTIALS``
            is not set (the simulator would push callbacks signed with them).
    """
    if not settings.sandbox and not settings.sim_allow_real_credentials:
        raise ConfigurationError(REAL_CREDENTIALS_REFUSED)
    configure_service_logging(settings, "simulator")
    registry = new_registry()
    readiness = Readiness()
    mark_sandbox_mode("simulator", sandbox=settings.sandbox, registry=registry, readiness=readiness)
    app = build_simulator_app(settings, registry=registry, readiness=readiness)
    server = HttpServer(
        app,
        settings.sim_http_host,
        settings.sim_http_port,
        name="simulator",
        port_setting="SIM_HTTP_PORT",
    )
    log.info(
        "simulator_configured",
        suite_id=settings.suite_id,
        sandbox=settings.sandbox,
        command_url=settings.sim_command_url,
        data_url=settings.sim_data_url,
        push_interval_s=settings.sim_ticket_interval_s,
        state_file=None if settings.sim_state_file is None else str(settings.sim_state_file),
    )
    await run_components([server])


def main() -> None:
    """Entry point of ``python -m simulator`` and ``wecom-suite simulator``."""
    service_main(SimulatorSettings, run_simulator)
