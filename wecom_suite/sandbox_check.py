"""At the start of a sandbox ``wecom-suite run``: does the simulator know every installation the
store calls active? When it does not, sends to them fail (40084), so one warning says what to do.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from pydantic import TypeAdapter, ValidationError

from shared.auth_client import AuthClient
from shared.bus.abc import Bus
from shared.contracts import AuthRequest, Installation
from shared.errors import ServiceError
from simulator.state import SimulatorState

log = structlog.get_logger(__name__)

_INSTALLATIONS = TypeAdapter(list[Installation])
HINT = (
    "the simulator has no record of these installs (its state file was deleted or unreadable), "
    "so notifications to them fail with 40084: install again through /install (or "
    "POST /_sim/install), or stop `wecom-suite run` and delete DATA_DIR to start afresh"
)


def unknown_to_simulator(
    state: SimulatorState, installations: list[Installation]
) -> dict[str, list[str]]:
    """Active installations (corp id → members) that the simulator does not have installed."""
    unknown: dict[str, list[str]] = {}
    for installation in installations:
        if installation.status != "active":
            continue
        corp = state.installs.corps.get(installation.corp_id)
        installed = set() if corp is None else {m.user_id for m in corp.installed_members}
        missing = [user for user in installation.members if user not in installed]
        if not installed or missing:
            unknown[installation.corp_id] = missing
    return unknown


class SandboxCoherence:
    """A component asking auth_service for the installations once everything has started."""

    name = "sandbox_check"

    def __init__(self, bus: Bus, state: SimulatorState) -> None:
        self._auth = AuthClient(bus)
        self._state = state
        self._task: asyncio.Task[None] | None = None
        self.unknown: dict[str, list[str]] | None = None
        """What the check found (None until it ran), for tests."""

    async def start(self) -> None:
        # In the background: a slow answer must not hold up the start.
        self._task = asyncio.create_task(self.check(), name="sandbox-check")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> None:
        """Compare once; a warning when the two disagree, nothing when they agree."""
        try:
            body = await self._auth.request(AuthRequest(op="installations"))
            installations = _INSTALLATIONS.validate_python(body.get("installations", []))
        except (ServiceError, ValidationError, AttributeError) as exc:
            log.info("sandbox_check_skipped", reason=type(exc).__name__)
            return
        self.unknown = unknown_to_simulator(self._state, installations)
        if self.unknown:
            log.warning("sandbox_installs_unknown_to_simulator", corps=self.unknown, hint=HINT)
