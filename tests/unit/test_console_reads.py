"""The console's read ops answered from the stores: token_service's ``status`` (times, never a
value) and the notifier's ``counts``/``results`` (status and reason, never content)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from notifier.domain import RequestRecord, failed_result
from notifier.queries import NotifyQueries
from notifier.store import COLLECTIONS as NOTIFY_COLLECTIONS
from notifier.store import Claim, StoredNotifications
from shared.bus.abc import Message
from shared.contracts.rpc import TokensStatus
from shared.errors import InvalidRequest
from shared.metrics import new_registry
from shared.notify import NotifyResult
from shared.storage.crypto import SecretBox
from shared.storage.sqlite import SQLiteStore
from token_service.domain import CachedToken, SuiteTicket
from token_service.handlers import TokenHandlers
from token_service.manager import TokenManager
from token_service.metrics import TokenMetrics
from token_service.store import COLLECTIONS as TOKEN_COLLECTIONS
from token_service.store import StoredTokens

KEY = bytes(range(32))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def notify_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "notify.db", NOTIFY_COLLECTIONS)
    await store.start()
    yield store
    await store.stop()


@pytest.fixture
async def token_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "tokens.db", TOKEN_COLLECTIONS)
    await store.start()
    yield store
    await store.stop()


async def _finish(
    repository: StoredNotifications, request_id: str, result: NotifyResult, corp_id: str
) -> None:
    claim = await repository.claim(request_id, "owner", 30.0)
    assert isinstance(claim, Claim)
    await repository.finish(claim, result, corp_id=corp_id)


async def _ask(queries: NotifyQueries, body: dict[str, object]) -> dict[str, object]:
    reply = await queries.answer(Message(json.dumps(body).encode(), "m", "rpc"))
    return cast(dict[str, object], json.loads(reply))


async def test_notify_counts_and_results_come_from_the_store(notify_store: SQLiteStore) -> None:
    """Finished requests are counted by status since a time and listed newest first, filtered
    by corp and status, with errcode and reason but no content."""
    clock = Clock()
    repository = StoredNotifications(notify_store, clock=clock)
    queries = NotifyQueries(repository)
    sent = NotifyResult(request_id="a", status="sent", errcode=0, errmsg="ok", attempts=1)
    await _finish(repository, "a", sent, "wwone")
    clock.now += 10
    await _finish(repository, "b", failed_result("b", "no agent", errcode=40084), "wwone")
    clock.now += 10
    await _finish(repository, "c", sent.model_copy(update={"request_id": "c"}), "wwtwo")
    assert await _ask(queries, {"op": "counts", "since": 0}) == {"counts": {"sent": 2, "failed": 1}}
    assert await _ask(queries, {"op": "counts", "since": clock.now - 5}) == {"counts": {"sent": 1}}
    listed = await _ask(queries, {"op": "results"})
    rows = cast(list[dict[str, object]], listed["results"])
    assert [row["request_id"] for row in rows] == ["c", "b", "a"]
    only = await _ask(queries, {"op": "results", "corp_id": "wwone", "status": "failed"})
    [row] = cast(list[dict[str, object]], only["results"])
    assert (row["request_id"], row["errcode"], row["errmsg"]) == ("b", 40084, "no agent")
    assert set(row) == {
        "request_id",
        "corp_id",
        "status",
        "errcode",
        "errmsg",
        "attempts",
        "finished_at",
    }
    limited = await _ask(queries, {"op": "results", "limit": 1})
    assert len(cast(list[object], limited["results"])) == 1
    refused = await _ask(queries, {"op": "results", "limit": 10_000})
    assert cast(dict[str, str], refused["error"])["code"] == "bad_request"
    # The existing op answers as before.
    assert "result" in await _ask(queries, {"op": "result", "request_id": "a"})


async def test_a_record_left_unfinished_is_not_listed(notify_store: SQLiteStore) -> None:
    """Only final results are listed: a claimed request is not a result yet."""
    repository = StoredNotifications(notify_store)
    claim = await repository.claim("pending", "owner", 30.0)
    assert isinstance(claim, Claim)
    await repository.update(claim, RequestRecord("pending", "claimed", owner="owner"))
    assert await _ask(NotifyQueries(repository), {"op": "counts"}) == {"counts": {}}


async def test_token_status_gives_times_never_values(token_store: SQLiteStore) -> None:
    """``{"op": "status"}`` names the ticket's times and each cached token's kind, corp and
    lifetime; the values stay sealed in the store."""
    repository = StoredTokens(token_store, SecretBox(KEY))
    await repository.save_ticket(SuiteTicket("ticket-value-secret", 1000.0, 1001.0))
    await repository.put_token("corp:wwone", CachedToken("corp-token-secret", 9e9, 2000.0))
    await repository.put_token("suite", CachedToken("suite-token-secret", 9e9, 2000.0))
    handlers = TokenHandlers(
        cast(TokenManager, None),
        repository,
        SecretBox(KEY),
        TokenMetrics.create(new_registry()),
        suite_id="wwsuite",
    )
    raw = await handlers.answer(Message(b'{"op": "status"}', "m", "rpc"))
    assert b"secret" not in raw
    status = TokensStatus.model_validate_json(raw)
    assert status.ticket is not None
    assert status.ticket.received_at.timestamp() == 1001.0
    assert [(t.kind, t.corp_id) for t in status.tokens] == [("corp", "wwone"), ("suite", None)]
    with pytest.raises(InvalidRequest):
        await handlers.answer(Message(b'{"op": "everything"}', "m", "rpc"))
