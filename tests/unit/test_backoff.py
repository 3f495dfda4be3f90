"""The one retry policy: its waits, its limits, and the tenacity retrier built from it."""

from __future__ import annotations

import pytest
from tenacity import retry_if_exception_type, retry_if_result

from shared.backoff import Backoff


def test_waits_grow_by_the_factor_up_to_the_cap() -> None:
    """Each retry waits ``factor`` times longer than the one before, never above the cap."""
    policy = Backoff(initial_s=0.5, factor=2.0, cap_s=3.0)
    assert [policy.base_delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_bound() -> None:
    """Jitter adds between zero and ``jitter_s`` to a wait, never more."""
    policy = Backoff(initial_s=1.0, jitter_s=0.25)
    delays = [policy.delay(1) for _ in range(200)]
    assert all(1.0 <= d <= 1.25 for d in delays)
    assert len(set(delays)) > 1


def test_invalid_policies_are_refused() -> None:
    """A negative wait, a shrinking factor or zero attempts is a programming error."""
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)
    with pytest.raises(ValueError, match="max_attempts"):
        Backoff(max_attempts=0)


async def test_retrying_reraises_the_last_error_after_max_attempts() -> None:
    """Giving up re-raises the caller's own exception, not tenacity's RetryError."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"try {calls}")

    retrier = Backoff(initial_s=0.1, factor=3.0, max_attempts=3).retrying(
        retry=retry_if_exception_type(ConnectionError), sleep=sleep
    )
    with pytest.raises(ConnectionError, match="try 3"):
        await retrier(flaky)
    assert calls == 3
    assert slept == pytest.approx([0.1, 0.3])


async def test_retrying_returns_the_last_result_when_a_result_based_retry_gives_up() -> None:
    """A result-based retry that runs out of attempts hands back the last result."""

    async def sleep(_: float) -> None:
        return None

    results = iter([False, False, True])

    async def attempt() -> bool:
        return next(results)

    give_up_early = Backoff(initial_s=0, max_attempts=2).retrying(
        retry=retry_if_result(lambda ok: not ok), sleep=sleep
    )
    assert await give_up_early(attempt) is False


async def test_deadline_stops_before_a_wait_that_would_pass_it() -> None:
    """With a deadline, no wait is started that would end after it."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def always_fails() -> None:
        raise TimeoutError

    retrier = Backoff(initial_s=10.0, deadline_s=5.0).retrying(
        retry=retry_if_exception_type(TimeoutError), sleep=sleep
    )
    with pytest.raises(TimeoutError):
        await retrier(always_fails)
    assert slept == []


async def test_run_awaits_what_a_plain_callable_returns() -> None:
    """A lambda returning a coroutine is awaited and retried, not silently dropped."""

    async def sleep(_: float) -> None:
        return None

    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError
        return "done"

    policy = Backoff(initial_s=0, max_attempts=5)
    plain = lambda: flaky()  # noqa: E731, PLW0108 - a plain callable returning a coroutine
    got = await policy.run(plain, retry=retry_if_exception_type(ConnectionError), sleep=sleep)
    assert got == "done"
    assert calls == 3
