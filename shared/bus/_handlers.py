"""What both bus implementations' consumers share: stopping handler tasks, logging failures."""

from __future__ import annotations

import asyncio

import structlog

from shared.bus.abc import Delivery, attempt_of
from shared.errors import ServiceError

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


def log_handler_failure(queue: str, delivery: Delivery, exc: Exception) -> None:
    """Log a handler's failure without its traceback or message: either can carry the body
    (pydantic puts the input in its errors). The message is in the dead-letter headers; the
    line points at the frame that raised."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    error_at = f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}" if frame else None
    # A retryable failure is expected now and then (it comes back later): a warning.
    retryable = isinstance(exc, ServiceError) and exc.retryable
    emit = log.warning if retryable else log.error
    emit(
        "consumer_handler_failed",
        queue=queue,
        message_id=delivery.message.message_id,
        correlation_id=delivery.message.correlation_id,
        routing_key=delivery.routing_key,
        redelivered=delivery.redelivered,
        error_type=type(exc).__name__,
        error_code=exc.code if isinstance(exc, ServiceError) else None,
        error_at=error_at,
        already_settled=delivery.is_settled,
        retryable=retryable,
        attempt=attempt_of(delivery.message),
    )
