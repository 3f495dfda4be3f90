"""The simulator's configurable send windows and its daily per-app budget (§11.7)."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.installs import Corp, Member
from simulator.messages import Outbox, SendLimits, china_day
from simulator.settings import SimulatorSettings
from simulator.state_types import WeComError
from tests.support.simulator import SimClock

# 2023-11-14 16:00:00 UTC is midnight in China (UTC+8), where WeCom's natural day starts.
CHINA_MIDNIGHT = 1_699_977_600.0


def corp(*installed: str) -> Corp:
    result = Corp("wwcorp", 1_000_002)
    for user in installed:
        result.members[user] = Member(user, f"wo{user}", installed=True)
    return result


def text(content: str = "hi") -> dict[str, Any]:
    return {"touser": "alice", "msgtype": "text", "agentid": 1, "text": {"content": content}}


def test_a_shrunk_minute_window_frees_places_sooner() -> None:
    """With a 5 s "minute" the third message is dropped, and delivered once 5 s passed."""
    clock = SimClock()
    outbox = Outbox(clock, SendLimits(per_minute=2, per_hour=None, minute_s=5))
    team = corp("alice")
    outcomes = [outbox.deliver(team, text(str(n)), ["alice"])["alice"] for n in range(3)]
    clock.advance(5)
    later = outbox.deliver(team, text("later"), ["alice"])["alice"]
    assert outcomes == ["delivered", "delivered", "dropped_limit"]
    assert later == "delivered"


def test_a_shrunk_hour_window_counts_over_its_own_length() -> None:
    """The hour window uses its configured length, independently of the minute window."""
    clock = SimClock()
    outbox = Outbox(clock, SendLimits(per_minute=None, per_hour=2, minute_s=1, hour_s=10))
    team = corp("alice")
    first = [outbox.deliver(team, text(str(n)), ["alice"])["alice"] for n in range(2)]
    clock.advance(9)
    held = outbox.deliver(team, text("held"), ["alice"])["alice"]
    clock.advance(1)
    freed = outbox.deliver(team, text("freed"), ["alice"])["alice"]
    assert first == ["delivered", "delivered"]
    assert (held, freed) == ("dropped_limit", "delivered")


def test_the_daily_budget_counts_person_times_and_refuses_the_send_that_exceeds_it() -> None:
    """Each member reached is one person-time; a send over the budget is 45009, whole."""
    clock = SimClock(CHINA_MIDNIGHT + 3600)
    outbox = Outbox(clock, SendLimits(per_minute=None, per_hour=None, per_app_day=3))
    team = corp("alice", "bob")
    assert outbox.deliver(team, text("1"), ["alice", "bob"]) == {
        "alice": "delivered",
        "bob": "delivered",
    }
    with pytest.raises(WeComError) as refused:
        outbox.deliver(team, text("2"), ["alice", "bob"])
    assert refused.value.errcode == 45009
    # The refused send took nothing: one more person-time still fits.
    assert outbox.deliver(team, text("3"), ["alice"]) == {"alice": "delivered"}
    with pytest.raises(WeComError):
        outbox.deliver(team, text("4"), ["bob"])


def test_the_daily_budget_is_back_at_chinas_midnight() -> None:
    """The block lasts the rest of the natural day (UTC+8), not 24 hours."""
    clock = SimClock(CHINA_MIDNIGHT - 60)
    outbox = Outbox(clock, SendLimits(per_minute=None, per_hour=None, per_app_day=1))
    team = corp("alice")
    outbox.deliver(team, text("1"), ["alice"])
    with pytest.raises(WeComError):
        outbox.deliver(team, text("2"), ["alice"])
    clock.advance(60)
    assert outbox.deliver(team, text("3"), ["alice"]) == {"alice": "delivered"}


def test_the_daily_budget_is_per_app_of_each_corp() -> None:
    """Another corp's app has its own budget; reset forgets what was spent."""
    outbox = Outbox(SimClock(), SendLimits(per_minute=None, per_hour=None, per_app_day=1))
    first, other = corp("alice"), Corp("wwother", 1_000_003)
    other.members["alice"] = Member("alice", "woalice", installed=True)
    outbox.deliver(first, text(), ["alice"])
    assert outbox.deliver(other, text(), ["alice"]) == {"alice": "delivered"}
    outbox.reset()
    assert outbox.deliver(first, text(), ["alice"]) == {"alice": "delivered"}


def test_china_day_changes_at_16_utc() -> None:
    """WeCom's day is China's: it turns at 16:00 UTC."""
    assert china_day(CHINA_MIDNIGHT) == china_day(CHINA_MIDNIGHT - 1) + 1
    assert china_day(CHINA_MIDNIGHT) == china_day(CHINA_MIDNIGHT + 86_399)


def test_settings_carry_the_windows_and_the_daily_budget() -> None:
    """SIM_SEND_WINDOW_*_S set the windows; SIM_SEND_LIMIT_APP_DAY is off (0) by default,
    since the doc's budget depends on a seat count nobody knows; SIM_LIMITS=off wins."""
    default = SimulatorSettings().send_limits
    assert (default.minute_s, default.hour_s, default.per_app_day) == (60, 3600, None)
    tuned = SimulatorSettings(
        sim_send_window_minute_s=2, sim_send_window_hour_s=30, sim_send_limit_app_day=500
    ).send_limits
    assert (tuned.minute_s, tuned.hour_s, tuned.per_app_day) == (2, 30, 500)
    off = SimulatorSettings(sim_limits=False, sim_send_limit_app_day=500).send_limits
    assert (off.per_minute, off.per_hour, off.per_app_day) == (None, None, None)
    with pytest.raises(ValueError, match="sim_send_window_minute_s"):
        SimulatorSettings(sim_send_window_minute_s=0)
