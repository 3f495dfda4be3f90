"""Runs the simulator as its own process: one HTTP server under the shared lifecycle."""

from __future__ import annotations

import structlog

from shared.component import service_main
from shared.http import HttpServer
from shared.lifecycle import run_components
from shared.logging import configure_service_logging
from simulator.app import build_simulator_app
from simulator.settings import SimulatorSettings

log = structlog.get_logger(__name__)


async def run_simulator(settings: SimulatorSettings) -> None:
    """Serve WeCom's API and the control API until SIGTERM."""
    configure_service_logging(settings, "simulator")
    app = build_simulator_app(settings)
    server = HttpServer(app, settings.sim_http_host, settings.sim_http_port, name="simulator")
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
