"""The claim heartbeat: a live owner renews its claim while it works, so nobody takes a
request over from it however long a WeCom call takes; once it is done nothing renews it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from notifier.dispatch import Dispatcher, InstalledAgents
from notifier.domain import NotifierPolicy
from notifier.limits import SendLimits
from notifier.media import MediaResolver
from notifier.metrics import NotifierMetrics
from notifier.sender import WeComSender
from notifier.store import COLLECTIONS, Claim, StoredNotifications
from shared.metrics import new_registry
from shared.notify import parse_notify_request
from shared.storage.sqlite import SQLiteStore

LEASE_S = 0.3


class SlowSender(WeComSender):
    """message/send that answers only when the test lets it."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.answer = asyncio.Event()

    async def send(self, corp_id: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.called.set()
        await self.answer.wait()
        return {"errcode": 0, "errmsg": "ok", "msgid": "m1"}


class NoAgents(InstalledAgents):
    def __init__(self) -> None:
        pass

    async def agent_id(self, corp_id: str) -> int | None:
        raise AssertionError("the requests carry their agent id")


@pytest.fixture
async def repository(tmp_path: Path) -> AsyncIterator[StoredNotifications]:
    store = SQLiteStore(tmp_path / "notifier.db", COLLECTIONS)
    await store.start()
    yield StoredNotifications(store)
    await store.stop()


def _dispatcher(repository: StoredNotifications, sender: WeComSender) -> Dispatcher:
    metrics = NotifierMetrics.create(new_registry())
    policy = NotifierPolicy(
        max_attempts=5,
        member_windows=(),
        app_windows=(),
        margin_s=1.0,
        group_size=100,
        hold_s=10.0,
        media_margin_s=3600.0,
        claim_s=LEASE_S,
        retry_horizon_s=400.0,
    )
    return Dispatcher(
        repository,
        sender,
        NoAgents(),
        SendLimits(repository, metrics, policy),
        MediaResolver(repository, sender, metrics, margin_s=3600.0),
        metrics,
        policy,
    )


async def test_a_live_owner_keeps_its_claim_for_as_long_as_it_works(
    repository: StoredNotifications,
) -> None:
    """A send lasting many leases is never taken over; after it the claim is not renewed."""
    sender = SlowSender()
    request = parse_notify_request(
        {
            "id": "slow-1",
            "corp_id": "wwcorp",
            "agent_id": 1000002,
            "to": {"users": ["alice"]},
            "message": {"msgtype": "text", "text": {"content": "hello"}},
        }
    )
    running = asyncio.create_task(_dispatcher(repository, sender).run(request, last_delivery=False))
    await asyncio.wait_for(sender.called.wait(), 5)
    for _ in range(5):
        await asyncio.sleep(LEASE_S)
        assert await repository.claim("slow-1", "intruder", LEASE_S) is None
    sender.answer.set()
    outcome = await asyncio.wait_for(running, 5)
    assert outcome.result.status == "sent"
    record = await repository.get_request("slow-1")
    assert record is not None
    assert record.state == "done"
    assert record.claimed_until == 0.0
    # Done: a later delivery gets the result, not a claim.
    assert not isinstance(await repository.claim("slow-1", "late", LEASE_S), Claim)
