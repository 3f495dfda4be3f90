"""One retry policy for every loop that waits and tries again: the bus connection, WeCom's
transient failures, lost compare-and-set races and the notifier's held sends.

A :class:`Backoff` is plain data (first wait, growth factor, cap, jitter, deadline, attempts);
:meth:`Backoff.retrying` turns it into a ``tenacity.AsyncRetrying`` so the retry loop itself
is the library's, and :meth:`Backoff.delay` gives one wait for code that schedules rather
than loops.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_base,
    stop_after_attempt,
    stop_before_delay,
    stop_never,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

__all__ = ["Backoff", "RetryCallState"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with a cap, additive jitter and optional limits.

    Attributes:
        initial_s: the wait before the first retry.
        factor: each later wait is this many times the one before.
        cap_s: no single wait (before jitter) is longer than this.
        jitter_s: up to this many seconds are added at random to each wait, so that
            replicas woken by one event do not all retry in the same instant.
        deadline_s: give up rather than start a wait that would end more than this many
            seconds after the first try (``None``: no deadline).
        max_attempts: give up after this many tries in all (``None``: no limit).
    """

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    jitter_s: float = 0.0
    deadline_s: float | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.cap_s < 0 or self.jitter_s < 0 or self.factor < 1:
            raise ValueError("backoff waits must be >= 0 and the factor >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def base_delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the first retry), without jitter."""
        if retry < 1:
            raise ValueError("retries are numbered from 1")
        return min(self.cap_s, self.initial_s * self.factor ** (retry - 1))

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the first retry), jitter included."""
        return self.base_delay(retry) + self.jitter()

    def jitter(self) -> float:
        """A random extra wait in ``[0, jitter_s]``; not for cryptography."""
        return random.uniform(0.0, self.jitter_s) if self.jitter_s else 0.0  # noqa: S311

    def retrying(
        self,
        *,
        retry: retry_base,
        before_sleep: Callable[[RetryCallState], Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> AsyncRetrying:
        """A tenacity retrier that waits as this policy says.

        ``retry`` decides which outcomes are tried again (``retry_if_exception_type``,
        ``retry_if_result``, …). When the policy gives up, the last exception is re-raised as
        itself (never a ``tenacity.RetryError``); for a result-based ``retry``, the last
        result is returned and the caller decides what a lost last attempt means.
        """
        return AsyncRetrying(
            stop=self._stop(),
            wait=self._wait(),
            retry=retry,
            before_sleep=before_sleep,
            sleep=sleep,
            retry_error_callback=_last_outcome,
        )

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        retry: retry_base,
        before_sleep: Callable[[RetryCallState], Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> T:
        """Run ``operation`` until ``retry`` accepts its outcome or this policy gives up.

        Prefer this to :meth:`retrying`: tenacity awaits only what it recognises as a coroutine
        function, so a plain callable returning an awaitable (a lambda, a partial) would be
        called and its awaitable never awaited. Here any such callable works.
        """

        async def attempt() -> T:
            return await operation()

        retrier = self.retrying(retry=retry, before_sleep=before_sleep, sleep=sleep)
        result: T = await retrier(attempt)
        return result

    def _wait(self) -> wait_base:
        wait: wait_base = wait_exponential(
            multiplier=self.initial_s, exp_base=self.factor, max=self.cap_s
        )
        return wait + wait_random(0, self.jitter_s) if self.jitter_s else wait

    def _stop(self) -> stop_base:
        stop: stop_base = stop_never
        if self.deadline_s is not None:
            stop = stop_before_delay(self.deadline_s)
        if self.max_attempts is not None:
            stop = stop | stop_after_attempt(self.max_attempts)
        return stop


def _last_outcome(state: RetryCallState) -> Any:
    """When the policy gives up: re-raise the last exception, or return the last result."""
    if state.outcome is None:  # pragma: no cover - tenacity always records one
        raise RuntimeError("tenacity gave up before any attempt")
    return state.outcome.result()
