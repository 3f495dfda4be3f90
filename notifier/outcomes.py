"""What one try at a request can end in besides a result: a wait (not now, never failed for
it) or a classified failure; and :func:`guard`, which turns a WeCom, token or auth exception
into the latter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Final, TypeVar

from notifier.domain import Failure, FailureKind, RequestRecord
from notifier.store import Claim, NotifierRepository
from shared.auth_client import AuthUnavailable
from shared.bus.abc import BusError
from shared.tokens import TokenUnavailable
from shared.wecom.api import (
    WeComApiError,
    WeComBusy,
    WeComRateLimited,
    WeComTokenRejected,
    WeComUnavailable,
)


class Wait(Exception):
    """Not now, but never failed for it: a send limit, or another delivery owns the request."""

    def __init__(self, reason: str, window: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.window = window


class Postpone(Exception):
    """A send limit has no room until ``due_at``: keep the request and deliver it again
    then (the schedule, not the retry queues)."""

    def __init__(self, due_at: float, window: str) -> None:
        super().__init__(window)
        self.due_at = due_at
        self.window = window


class Failed(Exception):
    """An attempt failed in a way :func:`classify` understood."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.errmsg)
        self.failure = failure


@dataclass(slots=True)
class Progress:
    """The claim as last written by this delivery (each write moves its version on).

    Every write goes through :meth:`write`, one at a time, so that the heartbeat renewing
    the claim and the delivery's own steps never overwrite each other.
    """

    claim: Claim
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set once the claim was given up (unclaimed, failed for a retry, or finished): the
    # heartbeat must not take it back.
    released: bool = False

    async def write(
        self, repository: NotifierRepository, change: Callable[[RequestRecord], RequestRecord]
    ) -> bool:
        """Write ``change(record)`` if the claim still holds; False when it was taken over."""
        async with self.lock:
            record = change(self.claim.record)
            updated = await repository.update(self.claim, record)
            if updated is None:
                return False
            self.claim = updated
            if record.claimed_until == 0.0:
                self.released = True
            return True

    async def renew(self, repository: NotifierRepository, until: float) -> bool:
        """Extend the claim to ``until``; False when it was given up or taken over."""
        async with self.lock:
            if self.released:
                return False
            updated = await repository.update(
                self.claim, replace(self.claim.record, claimed_until=until)
            )
            if updated is None:
                return False
            self.claim = updated
            return True


_API_ERROR_KINDS: Final[tuple[tuple[type[WeComApiError], FailureKind], ...]] = (
    (WeComBusy, "busy"),
    (WeComRateLimited, "rate_limited"),
    # with_token already refreshed once: a second rejection is a wrong or void credential.
    (WeComTokenRejected, "token"),
    (WeComApiError, "permanent"),
)


def classify(exc: Exception) -> Failure | None:
    """The :class:`Failure` an exception of a WeCom, token or auth call means; None for any
    other exception (a bug or a store outage, left to the bus)."""
    if isinstance(exc, WeComApiError):
        kind = next(kind for cls, kind in _API_ERROR_KINDS if isinstance(exc, cls))
        return Failure(kind, exc.errcode, exc.errmsg)
    if isinstance(exc, WeComUnavailable):
        return Failure("unavailable", None, exc.message, maybe_delivered=exc.maybe_delivered)
    if isinstance(exc, TokenUnavailable):
        token_kind: FailureKind = "unavailable" if exc.retryable_now else "permanent"
        return Failure(token_kind, None, f"no corp token ({exc.error_code}): {exc.message}")
    if isinstance(exc, AuthUnavailable | BusError):
        return Failure("unavailable", None, exc.message)
    return None


_T = TypeVar("_T")


async def guard(call: Awaitable[_T]) -> _T:
    """Await ``call``; a WeCom, token or auth failure becomes :class:`Failed`."""
    try:
        return await call
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            raise
        raise Failed(failure) from exc
