"""Stopping a consumer's handler tasks: the part both bus implementations share."""

from __future__ import annotations

import asyncio

import structlog

log = structlog.get_logger(__name__)

_CANCEL_WAIT = 1.0  # how long a cancelled handler may take to unwind before we give up on it


async def stop_handler_tasks(
    tasks: set[asyncio.Task[None]],
    caller: asyncio.Task[object] | None,
    grace: float,
    queue: str,
) -> None:
    """Let in-flight handlers finish for ``grace`` seconds, then cancel the rest.

    A handler may cancel its own consumer (``caller``); it must not wait for, or cancel,
    itself. Handlers that ignore cancellation for longer than a second are logged and left.
    """
    others = {task for task in tasks if task is not caller}
    if not others:
        return
    _, pending = await asyncio.wait(others, timeout=max(grace, 0.0))
    for task in pending:
        task.cancel()
    if pending:
        _, stuck = await asyncio.wait(pending, timeout=_CANCEL_WAIT)
        if stuck:
            log.warning("consumer_handler_ignored_cancel", queue=queue, count=len(stuck))
