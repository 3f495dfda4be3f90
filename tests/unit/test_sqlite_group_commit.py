"""The SQLite store's group commit: batched writes keep compare-and-set exact, isolate a failing
op, and are committed (visible to another connection) when their await returns."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from shared.storage.abc import StoredRecord, StoreError
from shared.storage.cas import Decision, Write, compare_and_update
from shared.storage.sqlite import DB_FILE_NAME, SQLiteStore

WRITERS = 200


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A started store on a fresh file."""
    opened = SQLiteStore(tmp_path / DB_FILE_NAME, ["docs"], busy_timeout_s=0.2)
    await opened.start()
    yield opened
    await opened.stop()


async def _in_one_batch(store: SQLiteStore, *writes: Awaitable[Any]) -> list[Any]:
    """Queue ``writes`` while the worker thread is held, so one flush takes them all."""
    assert store._executor is not None
    held = threading.Event()
    blocker = asyncio.get_running_loop().run_in_executor(store._executor, held.wait)
    tasks = [asyncio.ensure_future(write) for write in writes]
    for _ in range(3):  # each task runs up to its await of the group commit
        await asyncio.sleep(0)
    commits = store.commits
    held.set()
    await blocker
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert store.commits == commits + 1, "the writes did not share one commit"
    return results


async def test_concurrent_read_modify_write_loses_no_update(store: SQLiteStore) -> None:
    """Many concurrent compare-and-set writers on one key: every increment lands, batched."""

    def add_one(record: StoredRecord | None) -> Decision[int]:
        n = 0 if record is None else int(record.doc["n"])
        return Write({"n": n + 1}, n + 1)

    await asyncio.gather(
        *(compare_and_update(store, "docs", "counter", add_one) for _ in range(WRITERS))
    )
    record = await store.get_record("docs", "counter")
    assert record is not None
    assert record.doc == {"n": WRITERS}
    assert record.version == WRITERS


async def test_concurrent_writes_share_commits(store: SQLiteStore) -> None:
    """Writes queued while a commit runs go together in the next one: fewer commits than writes."""
    commits = store.commits
    versions = await asyncio.gather(*(store.put("docs", f"k{n}", {"n": n}) for n in range(WRITERS)))
    assert versions == [1] * WRITERS
    assert store.commits - commits < WRITERS // 2
    assert len(await store.find("docs")) == WRITERS


async def test_racing_compare_and_set_in_one_batch_has_one_winner(store: SQLiteStore) -> None:
    """Ten writers expecting the same version in one transaction: exactly the first wins."""
    version = await store.put("docs", "k", {"who": "start"})
    results = await _in_one_batch(
        store, *(store.compare_and_set("docs", "k", version, {"who": n}) for n in range(10))
    )
    assert results == [True] + [False] * 9
    record = await store.get_record("docs", "k")
    assert record is not None
    assert (record.doc, record.version) == ({"who": 0}, version + 1)


async def test_each_batched_op_sees_the_ones_before_it(store: SQLiteStore) -> None:
    """Within a batch an insert is visible to the next op's compare-and-set and delete."""
    results = await _in_one_batch(
        store,
        store.insert_if_absent("docs", "k", {"n": 1}),
        store.insert_if_absent("docs", "k", {"n": 99}),
        store.compare_and_set("docs", "k", 1, {"n": 2}),
        store.compare_and_delete("docs", "k", 1),
        store.put("docs", "k", {"n": 3}),
    )
    assert results == [True, False, True, False, 3]
    assert await store.get("docs", "k") == {"n": 3}


async def test_a_failing_op_is_undone_alone(store: SQLiteStore) -> None:
    """An op that raises mid-batch rolls back its own effects; the others commit."""

    def half_then_fail() -> None:
        store._db().execute(
            "INSERT INTO documents (collection, key, doc, version) VALUES ('docs', 'bad', '{}', 1)"
        )
        raise sqlite3.IntegrityError("injected")

    results = await _in_one_batch(
        store,
        store.put("docs", "a", {"n": 1}),
        store._write(half_then_fail),
        store.put("docs", "b", {"n": 2}),
    )
    assert results[0] == 1
    assert isinstance(results[1], StoreError)
    assert "injected" not in str(results[1])  # the class name only, never SQL values
    assert results[2] == 1
    assert await store.get("docs", "a") == {"n": 1}
    assert await store.get("docs", "b") == {"n": 2}
    assert await store.get("docs", "bad") is None


async def test_an_awaited_write_is_committed(store: SQLiteStore) -> None:
    """When a write's await returns, a second connection already reads it: it is committed."""
    for n in range(20):
        await store.put("docs", f"k{n}", {"n": n})
        with sqlite3.connect(store.path) as other:
            row = other.execute(
                "SELECT doc FROM documents WHERE collection = 'docs' AND key = ?", (f"k{n}",)
            ).fetchone()
        assert row == (f'{{"n":{n}}}',)
    assert not store._db().in_transaction


async def test_a_batch_that_cannot_lock_fails_every_op(store: SQLiteStore) -> None:
    """Another process holding the write lock past busy_timeout fails the whole batch, cleanly."""
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        results = await asyncio.gather(
            store.put("docs", "x", {"n": 1}),
            store.insert_if_absent("docs", "y", {"n": 1}),
            return_exceptions=True,
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert all(isinstance(result, StoreError) for result in results)
    assert await store.get("docs", "x") is None
    # The store recovers: the next write commits.
    assert await store.put("docs", "x", {"n": 2}) == 1


async def test_a_cancelled_writer_does_not_break_the_batch(store: SQLiteStore) -> None:
    """A caller that gives up waiting leaves the other writes of its batch intact."""
    assert store._executor is not None
    held = threading.Event()
    blocker = asyncio.get_running_loop().run_in_executor(store._executor, held.wait)
    gone = asyncio.ensure_future(store.put("docs", "gone", {"n": 1}))
    kept = asyncio.ensure_future(store.put("docs", "kept", {"n": 1}))
    await asyncio.sleep(0)
    gone.cancel()
    held.set()
    await blocker
    assert await kept == 1
    assert gone.cancelled()
    assert await store.get("docs", "kept") == {"n": 1}


async def test_a_read_does_not_wait_for_a_group_commit(store: SQLiteStore) -> None:
    """Reads have a thread and a connection of their own: one answers (with the last
    committed state) while the writer thread is held in the middle of its work."""
    await store.put("docs", "a", {"v": 1})
    assert store._executor is not None
    held = threading.Event()
    blocker = asyncio.get_running_loop().run_in_executor(store._executor, held.wait)
    pending = asyncio.ensure_future(store.put("docs", "a", {"v": 2}))
    try:
        async with asyncio.timeout(5):
            assert await store.get("docs", "a") == {"v": 1}
            assert [r.doc for r in await store.find("docs")] == [{"v": 1}]
        assert not pending.done()
    finally:
        held.set()
    await blocker
    await pending
    assert await store.get("docs", "a") == {"v": 2}


async def test_the_read_connection_cannot_write(store: SQLiteStore) -> None:
    """Every write goes through the group commit: the reader's connection refuses them."""

    def write_through_reader() -> None:
        store._read_db().execute("DELETE FROM documents")

    await store.put("docs", "a", {"v": 1})
    with pytest.raises(StoreError, match="OperationalError"):
        await store._read(write_through_reader)
    assert await store.get("docs", "a") == {"v": 1}


@pytest.mark.parametrize("failing", ["_open", "_open_reader"])
async def test_a_start_that_failed_can_be_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A connection that cannot be opened (another process holds the file's lock) fails the
    start and leaves nothing half-open: the service's retry opens the store for real."""
    opened = SQLiteStore(tmp_path / DB_FILE_NAME, ["docs"], busy_timeout_s=0.2)
    original = getattr(opened, failing)
    calls = 0

    def locked_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sqlite3.OperationalError("database is locked")
        original()

    monkeypatch.setattr(opened, failing, locked_once)
    with pytest.raises(StoreError, match="OperationalError"):
        await opened.start()
    with pytest.raises(StoreError, match="not started"):
        await opened.get("docs", "a")
    await opened.start()
    try:
        await opened.put("docs", "a", {"v": 1})
        assert await opened.get("docs", "a") == {"v": 1}
        assert calls == 2
    finally:
        await opened.stop()
