"""The one retry layer of the bus: what it tries again, what it raises at once, what it logs."""

from __future__ import annotations

import asyncio

import pytest
from aiormq.exceptions import ProbableAuthenticationError
from structlog.testing import capture_logs

from shared.backoff import Backoff
from shared.bus._reconnect import keep_trying
from shared.bus.abc import BusError, TopologyError
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY

FAST = Backoff(initial_s=0.001, cap_s=0.001)


class Steps:
    """A step that raises each of ``errors`` in turn, then returns how often it ran."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.undone = 0

    async def step(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls

    async def undo(self) -> None:
        self.undone += 1


async def test_bus_errors_are_retried_and_each_wait_is_logged() -> None:
    """Two outages, then success: three attempts, two warnings, the half-made work undone."""
    steps = Steps(BusError("away"), BusError("away"))
    with capture_logs() as logs:
        result = await keep_trying(
            steps.step, FAST, event="bus_connect_failed", undo=steps.undo, host="h"
        )
    assert result == 3
    assert steps.undone == 2
    warnings = [e for e in logs if e["event"] == "bus_connect_failed"]
    assert [e["attempt"] for e in warnings] == [1, 2]
    assert all(e["error"] == "bus_unavailable" and e["host"] == "h" for e in warnings)


@pytest.mark.parametrize("error", [TopologyError("conflict"), RuntimeError("bug")])
async def test_other_errors_are_raised_at_once(error: Exception) -> None:
    """A topology conflict or a bug is not an outage: no wait, no second attempt."""
    steps = Steps(error)
    with capture_logs() as logs, pytest.raises(type(error)):
        await keep_trying(steps.step, FAST, event="bus_connect_failed", undo=steps.undo)
    assert steps.calls == 1
    assert steps.undone == 0
    assert logs == []


async def test_a_deadline_gives_up_with_the_last_bus_error() -> None:
    """With a deadline of 0 there is exactly one attempt, and its own BusError comes out."""
    steps = Steps(BusError("first"), BusError("second"))
    with pytest.raises(BusError, match="first"):
        await keep_trying(steps.step, Backoff(deadline_s=0.0), event="bus_connect_failed")
    assert steps.calls == 1


class StartFails(InProcessBus):
    """An in-process bus whose start raises ``error`` every time."""

    def __init__(self, error: Exception) -> None:
        super().__init__(BASE_TOPOLOGY)
        self.error = error
        self.attempts = 0

    async def start(self) -> None:
        self.attempts += 1
        raise self.error


async def test_the_component_stops_at_once_on_a_topology_conflict() -> None:
    """Retrying cannot fix another deployment's names: connected() raises after one try."""
    bus = StartFails(TopologyError("conflict"))
    component = BusComponent(bus, retry_initial_s=0.001, retry_max_s=0.001)
    with capture_logs() as logs:
        await component.start()
        with pytest.raises(TopologyError):
            await asyncio.wait_for(component.connected(), timeout=5)
    await component.stop()
    assert bus.attempts == 1
    assert "bus_topology_conflict" in [e["event"] for e in logs]


async def test_the_component_does_not_retry_a_bug() -> None:
    """A RuntimeError from start() is a bug: it surfaces from connected(), not as a BusError."""
    bus = StartFails(RuntimeError("bug"))
    component = BusComponent(bus, retry_initial_s=0.001, retry_max_s=0.001)
    await component.start()
    with pytest.raises(RuntimeError, match="bug"):
        await asyncio.wait_for(component.connected(), timeout=5)
    await component.stop()
    assert bus.attempts == 1


async def test_the_component_settings_are_its_backoff() -> None:
    """retry_initial_s and retry_max_s are the first and the longest wait, with no deadline."""
    component = BusComponent(InProcessBus(BASE_TOPOLOGY), retry_initial_s=0.3, retry_max_s=2.0)
    waits = [component.backoff.base_delay(n) for n in range(1, 6)]
    assert waits == [0.3, 0.6, 1.2, 2.0, 2.0]
    assert component.backoff.deadline_s is None
    assert component.backoff.max_attempts is None


async def test_refused_credentials_are_an_error_line_and_still_retried() -> None:
    """A broker refusing the user: error-level bus_authentication_failed, then retried."""
    refused = BusError("cannot connect")
    refused.__cause__ = ProbableAuthenticationError("ACCESS_REFUSED")
    steps = Steps(refused, BusError("away"))
    with capture_logs() as logs:
        result = await keep_trying(
            steps.step, FAST, event="bus_connect_failed", url="amqp://u:***@h/"
        )
    assert result == 3
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("bus_authentication_failed", "error"),
        ("bus_connect_failed", "warning"),
    ]
    assert logs[0]["url"] == "amqp://u:***@h/"
    assert "AMQP_URL" in logs[0]["operator_action"]
    assert "operator_action" not in logs[1]
