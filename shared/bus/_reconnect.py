"""The one loop that tries a bus step again while the broker is away: connecting, subscribing.

``BusComponent`` runs it for every service, without a deadline. ``RabbitMQBus.start`` runs it
with its ``start_timeout`` as the deadline, which ``create_bus`` sets to 0 (one attempt), so
that a service has a single layer of retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import structlog
from tenacity import retry_if_exception_type

from shared.backoff import Backoff, RetryCallState
from shared.bus._broker_errors import is_authentication_failure
from shared.bus.abc import BusError

T = TypeVar("T")

log = structlog.get_logger(__name__)

CONNECT_BACKOFF: Final = Backoff(initial_s=0.1, factor=2.0, cap_s=5.0)
"""How long to wait between attempts to reach the broker: soon at first (a broker that is just
starting), then every 5 s at most, so that a service is up within seconds of its broker."""


async def keep_trying(
    step: Callable[[], Awaitable[T]],
    policy: Backoff,
    *,
    event: str,
    undo: Callable[[], Awaitable[None]] | None = None,
    **log_fields: object,
) -> T:
    """Run ``step`` until it returns, waiting as ``policy`` says after each ``BusError``.

    Only a ``BusError`` (the broker is away) is tried again. A ``TopologyError`` (another
    deployment declared the names differently) or any other exception (a bug) is raised at
    once: no wait can fix either.

    Args:
        step: one attempt.
        policy: the waits, and when to give up (``deadline_s``, ``max_attempts``).
        event: the warning logged before each wait, with the error code, the attempt and the
            wait in seconds. A broker that refused the credentials is an error-level
            ``bus_authentication_failed`` line instead (the same fields): waiting alone will
            not fix it, yet the operator may fix the user meanwhile, so it is retried too.
        undo: run after a failed attempt, before the wait (to drop what it half made).
        **log_fields: added to each warning.

    Raises:
        BusError: the last attempt's, once ``policy`` gives up.
    """

    async def attempt() -> T:
        try:
            return await step()
        except BusError:
            if undo is not None:
                await undo()
            raise

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        cause = error.__cause__ if error is not None and error.__cause__ is not None else error
        fields = dict(log_fields)
        if is_authentication_failure(error):
            emit, name = log.error, "bus_authentication_failed"
            fields.setdefault("operator_action", "check the user and password in AMQP_URL")
        else:
            emit, name = log.warning, event
        emit(
            name,
            error=error.code if isinstance(error, BusError) else None,
            error_type=type(cause).__name__,
            attempt=state.attempt_number,
            retry_in_s=round(state.upcoming_sleep, 2),
            **fields,
        )

    return await policy.run(
        attempt, retry=retry_if_exception_type(BusError), before_sleep=before_sleep
    )
