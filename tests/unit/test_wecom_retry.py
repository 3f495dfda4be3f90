"""retry_transient: which WeCom failures it tries again, how often, and its deadline rule."""

from __future__ import annotations

import time

import pytest
from structlog.testing import capture_logs

from shared.backoff import Backoff
from shared.wecom.api import (
    TRANSIENT_BACKOFF,
    WeComApiError,
    WeComBusy,
    WeComUnavailable,
    retry_transient,
)

FAST = Backoff(initial_s=0.001, cap_s=0.001, max_attempts=4)


class Calls:
    """An operation that raises each of ``errors`` in turn, then answers ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.count = 0

    async def call(self) -> str:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_the_default_waits_are_a_fifth_half_and_one_second() -> None:
    """Three retries, 0.2 s, 0.5 s and 1 s apart: four tries in all."""
    waits = [TRANSIENT_BACKOFF.base_delay(n) for n in range(1, 4)]
    assert waits == pytest.approx([0.2, 0.5, 1.0])
    assert TRANSIENT_BACKOFF.max_attempts == 4


async def test_busy_and_unavailable_are_retried() -> None:
    """WeCom's -1 and a network failure are blind-retryable; each wait is logged."""
    calls = Calls(WeComBusy(-1, "busy", "/p"), WeComUnavailable("down", maybe_delivered=False))
    with capture_logs() as logs:
        assert await retry_transient(calls.call, policy=FAST) == "ok"
    assert calls.count == 3
    assert [e["event"] for e in logs] == ["wecom_call_retrying", "wecom_call_retrying"]


async def test_the_last_try_raises_its_own_error() -> None:
    """After four tries the fourth failure comes out as itself."""
    calls = Calls(*(WeComUnavailable(f"down {n}", maybe_delivered=False) for n in range(1, 6)))
    with pytest.raises(WeComUnavailable, match="down 4"):
        await retry_transient(calls.call, policy=FAST)
    assert calls.count == 4


async def test_other_wecom_errors_are_not_retried() -> None:
    """A definite refusal (any other errcode) is raised at the first try."""
    calls = Calls(WeComApiError(40001, "bad secret", "/p"))
    with pytest.raises(WeComApiError):
        await retry_transient(calls.call, policy=FAST)
    assert calls.count == 1


async def test_it_stops_early_when_the_next_wait_would_pass_the_deadline() -> None:
    """With 50 ms left, the first 0.2 s wait would overrun: one try, its error raised."""
    calls = Calls(
        WeComUnavailable("down", maybe_delivered=False),
        WeComUnavailable("down", maybe_delivered=False),
    )
    with pytest.raises(WeComUnavailable):
        await retry_transient(calls.call, deadline=time.monotonic() + 0.05)
    assert calls.count == 1
