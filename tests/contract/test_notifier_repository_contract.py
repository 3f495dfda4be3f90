"""The notifier's repository on every store backend: one claim at a time, results kept and
returned to late deliveries, media ids cached, send-limit counters shared by replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from notifier.domain import MAX_DUPLICATE_INTERVAL_S, DuplicatePlan, EarlierSend, Window
from notifier.store import COLLECTIONS, MEDIA_TTL_S, Claim, Reservation, StoredNotifications
from shared.notify import NotifyResult
from tests.support.store_backends import BACKENDS, Backend, FakeClock

WINDOWS = (Window("minute", 2, 60.0, slots=6),)


@pytest.fixture(params=BACKENDS)
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[list[StoredNotifications]]:
    """Two repositories on one backend: two notifier replicas sharing the store."""
    backend: Backend = request.param(tmp_path, COLLECTIONS)
    stores = [backend.open(clock), backend.open(clock)]
    for store in stores:
        await store.start()
    yield [StoredNotifications(store, clock=clock) for store in stores]
    for store in stores:
        await store.stop()
    await backend.dispose()


async def test_one_claim_at_a_time_then_the_result_for_everyone(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """Only one replica claims a request; once finished, every replica gets its result."""
    a, b = replicas
    claim = await a.claim("req-1", "owner-a", 30.0)
    assert isinstance(claim, Claim)
    assert await b.claim("req-1", "owner-b", 30.0) is None
    result = NotifyResult(request_id="req-1", status="sent", msgid="m1", attempts=1)
    done = await a.finish(claim, result)
    assert done.result == result
    again = await b.claim("req-1", "owner-b", 30.0)
    assert not isinstance(again, Claim)
    assert again is not None
    assert again.result == result


async def test_a_late_second_finish_keeps_the_first_result_and_its_summary_row(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """A delivery that took over an expired claim and finishes after the first owner did gets
    the first owner's result back, and the console's summary row describes that one too (the
    row is written alongside the finish, then corrected)."""
    a, b = replicas
    first = await a.claim("req-f", "owner-a", 30.0)
    assert isinstance(first, Claim)
    clock.advance(31)
    second = await b.claim("req-f", "owner-b", 30.0)
    assert isinstance(second, Claim)
    sent = NotifyResult(request_id="req-f", status="sent", msgid="m1", attempts=1)
    assert (await a.finish(first, sent, corp_id="corp")).result == sent
    failed = NotifyResult(request_id="req-f", status="failed", errcode=-1, attempts=2)
    assert (await b.finish(second, failed, corp_id="corp")).result == sent
    rows = await b.results(since=0.0)
    assert [(row["request_id"], row["status"], row["attempts"]) for row in rows] == [
        ("req-f", "sent", 1)
    ]


async def test_a_redelivered_request_is_found_although_its_record_exists(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """A claim first tries to create the record (most deliveries are a request's first): for
    a request that has one, it falls back to reading it and decides on what is stored."""
    a, b = replicas
    claim = await a.claim("req-r", "owner-a", 30.0)
    assert isinstance(claim, Claim)
    assert await b.claim("req-r", "owner-b", 30.0) is None
    clock.advance(31)
    taken = await b.claim("req-r", "owner-b", 30.0)
    assert isinstance(taken, Claim)
    assert taken.record.owner == "owner-b"
    assert taken.version == claim.version + 1


async def test_an_expired_claim_left_in_flight_is_taken_over_as_ambiguous(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """An expired claim left mid-send is taken over as ambiguous; the old owner's writes fail."""
    a, b = replicas
    claim = await a.claim("req-2", "owner-a", 30.0)
    assert isinstance(claim, Claim)
    sending = await a.update(claim, replace(claim.record, in_flight=True, attempts=1))
    assert sending is not None
    clock.advance(31)
    taken = await b.claim("req-2", "owner-b", 30.0)
    assert isinstance(taken, Claim)
    assert taken.record.ambiguous
    assert taken.record.attempts == 1
    # The crashed owner's claim is stale: its writes no longer land.
    assert await a.update(sending, sending.record) is None


async def test_media_ids_are_cached_until_the_margin_before_expiry(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """A media id is shared across replicas until the margin before its 3-day expiry."""
    a, b = replicas
    await a.put_media("corp", "key", "media-1", 3600.0)
    assert await b.get_media("corp", "key") == "media-1"
    clock.advance(MEDIA_TTL_S - 3600.0 + 1)
    assert await b.get_media("corp", "key") is None


async def test_send_limit_counters_are_shared_and_released(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """Send-limit reservations are shared by replicas, a full window waits, a release frees it."""
    a, b = replicas
    first = await a.reserve("member:x", WINDOWS, 1, 0.0)
    second = await b.reserve("member:x", WINDOWS, 1, 0.0)
    assert isinstance(first, Reservation)
    assert isinstance(second, Reservation)
    wait = await a.reserve("member:x", WINDOWS, 1, 0.0)
    assert isinstance(wait, float)
    assert wait > 0
    await b.release(second)
    assert isinstance(await a.reserve("member:x", WINDOWS, 1, 0.0), Reservation)


async def test_sends_of_the_same_content_are_seen_by_every_replica(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """A send planned on one replica is an earlier send for the next plan on another, for
    4 hours; the plan decided inside the write is the one returned."""
    a, b = replicas
    seen: list[dict[str, list[EarlierSend]]] = []

    def plan_of(earlier: Mapping[str, list[EarlierSend]], now: float) -> DuplicatePlan:
        seen.append(dict(earlier))
        return DuplicatePlan(check=not earlier, interval=600, retry_safe=not earlier)

    first = await a.plan_send("content-1", ["alice"], "req-a", plan_of)
    assert first.check
    second = await b.plan_send("content-1", ["alice", "*"], "req-b", plan_of)
    assert not second.check
    assert [send.request_id for send in seen[-1]["alice"]] == ["req-a"]
    sends = await a.recent_sends("content-1")
    assert {key: [s.request_id for s in items] for key, items in sends.items()} == {
        "alice": ["req-a", "req-b"],
        "*": ["req-b"],
    }
    assert sends["alice"][0].checked is True
    clock.advance(MAX_DUPLICATE_INTERVAL_S + 1)
    assert await b.recent_sends("content-1") == {}


HOURLY = (Window("hour", 1000, 3600.0),)


async def test_member_slots_are_shared_by_replicas_up_to_1000_an_hour(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """1000 bookings from two replicas all go now; the 1001st waits for the hour window; a
    slot given back is booked again."""
    a, b = replicas
    now = clock()
    slots = [await (a, b)[n % 2].schedule("slots:x", HOURLY, 1.0, now) for n in range(1000)]
    assert set(slots) == {now}
    later = await a.schedule("slots:x", HOURLY, 1.0, now)
    assert later == now + 3601.0
    await b.unschedule("slots:x", HOURLY, later)
    await b.unschedule("slots:x", HOURLY, now)
    assert await a.schedule("slots:x", HOURLY, 1.0, now) == now


async def test_postponed_requests_are_kept_until_taken_once(
    replicas: list[StoredNotifications], clock: FakeClock
) -> None:
    """The schedule lists waiting requests soonest first; only one replica takes each."""
    a, b = replicas
    await a.put_scheduled("late", b'{"id": "late"}', clock() + 60)
    await a.put_scheduled("soon", b'{"id": "soon"}', clock() + 5)
    seen = await b.scheduled()
    assert [(entry.request_id, entry.body) for entry in seen] == [
        ("soon", b'{"id": "soon"}'),
        ("late", b'{"id": "late"}'),
    ]
    assert await a.drop_scheduled(seen[0])
    assert not await b.drop_scheduled(seen[0])
    assert [entry.request_id for entry in await b.scheduled()] == ["late"]
