"""The retry policy both buses share: which failures come back, when, and with what headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.bus._retry import plan_failure
from shared.bus.abc import Message, RetryLater, TopologyError, attempt_of
from shared.bus.topology import QueueSpec, Topology
from shared.errors import InvalidRequest, Unavailable

SPEC = QueueSpec("q", max_attempts=4, retry_delays=(1.0, 5.0))
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def plan(message: Message, exc: Exception, spec: QueueSpec = SPEC) -> dict[str, object]:
    result = plan_failure(spec, message, exc, exchange="ex", routing_key="rk", now=NOW)
    return {"delay": result.delay, "level": result.level, **result.headers}


def test_retry_queues_exist_per_delay_level_actually_used() -> None:
    """One queue per level; more attempts than levels reuse the last one."""
    assert SPEC.retry_queues == ("q.retry.1", "q.retry.2")
    assert QueueSpec("q", max_attempts=2).retry_queues == ("q.retry.1",)
    assert QueueSpec("q", max_attempts=1).retry_queues == ()
    assert QueueSpec("q", dead_letter=False).retry_queues == ()
    assert [SPEC.retry_delay(n) for n in (1, 2, 3)] == [1.0, 5.0, 5.0]


def test_retryable_error_plans_a_delayed_retry_with_the_next_attempt() -> None:
    """The copy carries the next attempt, where it came from, and when it first failed."""
    first = plan(Message(b"{}", "m", "t"), Unavailable("down"))

    assert (first["delay"], first["level"], first["x-attempt"]) == (1.0, 1, 2)
    assert (first["x-original-exchange"], first["x-original-routing-key"]) == ("ex", "rk")
    assert first["x-first-failure-at"] == NOW.isoformat()


def test_last_attempt_dead_letters_as_retries_exhausted() -> None:
    """At max_attempts the message stops coming back and says how often it was tried."""
    message = Message(b"{}", "m", "t", headers={"x-attempt": 4, "x-first-failure-at": "then"})

    dead = plan(message, RetryLater("still down"))

    assert dead["delay"] is None
    assert (dead["x-death-reason"], dead["x-attempts"]) == ("retries_exhausted", 4)
    assert (dead["x-first-failure-at"], dead["x-last-failure-at"]) == ("then", NOW.isoformat())


def test_non_retryable_error_dead_letters_at_once() -> None:
    """A permanent error is never retried, whatever attempt it is on."""
    dead = plan(Message(b"{}", "m", "t"), InvalidRequest("bad"))

    assert (dead["delay"], dead["x-death-reason"], dead["x-attempts"]) == (
        None,
        "handler_failed",
        1,
    )


def test_attempt_header_that_is_not_a_positive_int_counts_as_first() -> None:
    """A foreign or malformed header must not skip attempts or crash the consumer."""
    for value in ("2", 0, -1, True, None):
        assert attempt_of(Message(b"", "m", "t", headers={"x-attempt": value})) == 1


@pytest.mark.parametrize(
    "spec",
    [
        QueueSpec("q", max_attempts=0),
        QueueSpec("q", retry_delays=()),
        QueueSpec("q", retry_delays=(-1.0,)),
    ],
)
def test_invalid_retry_settings_are_refused(spec: QueueSpec) -> None:
    """A queue that could never retry, or would retry in the past, is a configuration bug."""
    with pytest.raises(TopologyError):
        Topology(queues=(spec,)).validate()


def test_retry_queue_name_clash_is_refused() -> None:
    """A declared queue may not take the name of another's retry queue."""
    with pytest.raises(TopologyError):
        Topology(queues=(QueueSpec("q"), QueueSpec("q.retry.1"))).validate()
