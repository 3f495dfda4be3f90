"""Service lifecycle: start components in order, report readiness, stop on SIGTERM.

A component is anything with ``name``, ``start()`` and ``stop()``. :func:`run_components`
starts them in order, waits for SIGTERM/SIGINT (or a given event), then stops them in
reverse order -- the gateway stops taking callbacks before the bus it publishes to closes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class Component(Protocol):
    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Readiness:
    """Named readiness checks; ``/readyz`` is ready only when all of them are."""

    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], bool]] = {}
        # Shown on /readyz (not a check): the process runs on the public sandbox keys.
        self.sandbox_mode = False

    def add(self, name: str, check: Callable[[], bool]) -> None:
        self._checks[name] = check

    def status(self) -> dict[str, bool]:
        return {name: bool(check()) for name, check in self._checks.items()}

    @property
    def is_ready(self) -> bool:
        return all(self.status().values())


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """Set ``stop`` on SIGTERM or SIGINT; returns a function that removes the handlers."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            break

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove


async def run_components(
    components: Sequence[Component], *, stop: asyncio.Event | None = None
) -> None:
    """Start ``components`` in order, wait for ``stop`` (or a signal), stop them in reverse.

    A component that fails to start stops the ones already started, then re-raises.
    """
    stop = stop or asyncio.Event()
    remove_signals = install_stop_signals(stop)
    try:
        async with AsyncExitStack() as stack:
            for component in components:
                await component.start()
                stack.push_async_callback(_stop_logged, component)
                log.info("component_started", component=component.name)
            log.info("service_ready", components=[c.name for c in components])
            await stop.wait()
            log.info("service_stopping")
    finally:
        remove_signals()
    log.info("service_stopped")


async def _stop_logged(component: Component) -> None:
    try:
        await component.stop()
    except Exception:
        log.exception("component_stop_failed", component=component.name)
    else:
        log.info("component_stopped", component=component.name)
