"""Send limits are scheduled, not retried: at the simulator (WeCom's own limits, same clock)
messages to one member leave in order, the 31st in a minute exactly when the window has
room, nothing is dropped, and no limit wait goes through the retry queues."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import rabbitmq
from tests.support.notifier import (
    NotifierRig,
    notifier_rig,
    scaled_clock,
    scaled_sleep,
    text_request,
)

pytestmark = pytest.mark.integration

# Ten times real time: a minute of both the notifier and the simulator lasts 6 s.
FACTOR = 10.0


@pytest.fixture(scope="module")
def vhost_url(amqp_url: str) -> Iterator[str]:
    """A vhost of this module's own: its durable queues die with it."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    with rabbitmq.fresh_vhost("wecom-notifier-limits") as url:
        yield url


def _to_alice(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in sent if "alice" in entry["outcomes"]]


def _sample(rig: NotifierRig, name: str, **labels: str) -> float:
    """The total of a notifier counter over the samples with ``labels``."""
    metric = getattr(rig.service.metrics, name)
    total = 0.0
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total


async def test_35_messages_to_one_member_leave_in_order_on_time(
    vhost_url: str, tmp_path: Path
) -> None:
    """Default limits (30/minute, 1000/hour, 1 s margin): the first 30 go at once, the 31st
    61–62 s after the first (simulated time), all 35 in the order requested, none dropped."""
    origin = time.time()
    clock = scaled_clock(FACTOR, origin)
    async with notifier_rig(
        vhost_url,
        tmp_path,
        name="limits-minute",
        sim_clock=clock,
        notifier_clock=(clock, scaled_sleep(FACTOR)),
    ) as rig:
        requests = [text_request(f"message {n}") for n in range(35)]
        for request in requests:
            await rig.publish(request)
        results = [await rig.results.wait(r["id"], timeout=30) for r in requests]
        assert {r.status for r in results} == {"sent"}
        sent = _to_alice(await rig.sent())
        assert [entry["body"]["text"]["content"] for entry in sent] == [
            f"message {n}" for n in range(35)
        ]
        assert [entry["outcomes"]["alice"] for entry in sent] == ["delivered"] * 35
        gap = sent[30]["sent_at"] - sent[0]["sent_at"]
        assert 61.0 <= gap <= 62.0, gap
        assert sent[29]["sent_at"] - sent[0]["sent_at"] < 61.0
        # Waits were scheduled, never handed to the retry queues.
        assert _sample(rig, "retries", reason="send_limit") == 0
        assert _sample(rig, "limit_waits", window="member", how="scheduled") >= 1


async def test_the_hour_window_is_kept_as_well(vhost_url: str, tmp_path: Path) -> None:
    """With a configurable hour (here 30 s of simulated time and 5 messages in it, the minute
    limit off on both sides) the 6th and 7th wait for the hour window, in order."""
    origin = time.time()
    clock = scaled_clock(FACTOR, origin)
    async with notifier_rig(
        vhost_url,
        tmp_path,
        name="limits-hour",
        sim_clock=clock,
        sim={"sim_send_limit_minute": 0, "sim_send_limit_hour": 5, "sim_send_window_hour_s": 30},
        notifier_clock=(clock, scaled_sleep(FACTOR)),
        notify_limit_member_per_minute=0,
        notify_limit_member_per_hour=5,
        notify_limit_hour_s=30.0,
    ) as rig:
        requests = [text_request(f"hourly {n}") for n in range(7)]
        for request in requests:
            await rig.publish(request)
        results = [await rig.results.wait(r["id"], timeout=30) for r in requests]
        assert {r.status for r in results} == {"sent"}
        sent = _to_alice(await rig.sent())
        assert [entry["body"]["text"]["content"] for entry in sent] == [
            f"hourly {n}" for n in range(7)
        ]
        assert [entry["outcomes"]["alice"] for entry in sent] == ["delivered"] * 7
        gap = sent[5]["sent_at"] - sent[0]["sent_at"]
        assert 31.0 <= gap <= 32.0, gap
