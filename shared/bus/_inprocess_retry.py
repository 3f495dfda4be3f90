"""Delayed retries for the in-process bus: one ``loop.call_later`` timer per waiting message.

The timers stand in for RabbitMQ's ``<queue>.retry.<level>`` queues. They live only in memory,
like every message of this bus, and ``close()`` cancels them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class RetryTimers:
    """The pending retries of one bus, so that closing it leaves no timer behind."""

    def __init__(self) -> None:
        self._handles: set[asyncio.TimerHandle] = set()

    def __len__(self) -> int:
        return len(self._handles)

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` after ``delay`` seconds, unless cancelled first."""
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._handles.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._handles.add(handle)

    def cancel_all(self) -> int:
        """Cancel every pending retry; returns how many were dropped."""
        handles, self._handles = self._handles, set()
        for handle in handles:
            handle.cancel()
        if handles:
            # In-memory messages die with the bus; say how many, never which bodies.
            log.warning("retries_dropped_on_close", count=len(handles))
        return len(handles)
