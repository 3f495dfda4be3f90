"""What a failed handler means for its message, decided once for both bus implementations.

A retryable error (``ServiceError.retryable``) on a queue with retries, before its last
attempt, schedules the message again after the queue's delay for that attempt; anything else
dead-letters it with headers that say why. The buses only carry the decision out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from shared.bus.abc import ATTEMPT_HEADER, HeaderValue, Message, attempt_of
from shared.bus.topology import QueueSpec
from shared.errors import ServiceError

HEADER_TEXT_LIMIT = 500  # an exception message in a header, truncated
FIRST_FAILURE_HEADER = "x-first-failure-at"
LAST_FAILURE_HEADER = "x-last-failure-at"
# Where the message was first published: a retried message comes back from a retry queue,
# and handlers still want the original exchange and routing key.
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
# RabbitMQ's own dead-lettering bookkeeping; a retry copy starts without it, as the bus keeps
# its own count (x-attempt) and RabbitMQ's x-death table does not survive our header mapping.
_BROKER_HEADERS = (
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
)


@dataclass(frozen=True, slots=True)
class FailurePlan:
    """Either a retry (``delay`` seconds, into retry queue ``level``) or a dead letter.

    ``headers`` are the complete headers of the retry copy, or the headers to add to the
    dead-letter copy.
    """

    headers: dict[str, HeaderValue]
    delay: float | None = None
    level: int = 0

    @property
    def is_retry(self) -> bool:
        return self.delay is not None


def plan_failure(
    spec: QueueSpec,
    message: Message,
    exc: Exception,
    *,
    exchange: str,
    routing_key: str,
    now: datetime | None = None,
) -> FailurePlan:
    """Decide what happens to ``message`` of queue ``spec`` whose handler raised ``exc``."""
    stamp = (now or datetime.now(UTC)).isoformat()
    attempt = attempt_of(message)
    first = message.headers.get(FIRST_FAILURE_HEADER)
    failure: dict[str, HeaderValue] = {
        "x-exception-type": type(exc).__name__,
        "x-exception-message": str(exc)[:HEADER_TEXT_LIMIT],
        "x-attempts": attempt,
        FIRST_FAILURE_HEADER: first if isinstance(first, str) else stamp,
        LAST_FAILURE_HEADER: stamp,
    }
    retryable = isinstance(exc, ServiceError) and exc.retryable
    if retryable and spec.retries and attempt < spec.max_attempts:
        headers = {k: v for k, v in message.headers.items() if k not in _BROKER_HEADERS}
        headers.setdefault(ORIGINAL_EXCHANGE_HEADER, exchange)
        headers.setdefault(ORIGINAL_ROUTING_KEY_HEADER, routing_key)
        headers.update(failure)
        headers[ATTEMPT_HEADER] = attempt + 1
        return FailurePlan(headers, spec.retry_delay(attempt), spec.retry_level(attempt))
    reason = "retries_exhausted" if retryable and spec.retries else "handler_failed"
    return FailurePlan({"x-death-reason": reason, "x-death-queue": spec.name, **failure})
