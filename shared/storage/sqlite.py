"""The embedded backend: one SQLite file in ``DATA_DIR``, shared safely by processes on one host.

WAL lets readers proceed while one writer commits, and ``busy_timeout`` makes a second
process wait for the write lock instead of failing. Every operation is a single SQL
statement, atomic on its own: a conditional ``UPDATE`` on the version column is the
compare-and-set, an upsert with a ``WHERE`` is the insert-if-absent.

Writes are group-committed: the worker thread takes every write queued at that moment and
runs them in one ``BEGIN IMMEDIATE … COMMIT`` (one fsync), each in its own ``SAVEPOINT`` so a
failing op is undone alone; each caller's await returns only after the COMMIT. sqlite3
blocks, so writes run on one worker thread per store and reads on a second one, each with
its own connection (sqlite3's thread-affinity rules): under WAL a read never waits for a
group commit's fsync, and it sees every write whose await has returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from shared.storage._common import (
    check_collections,
    check_field,
    require_collection,
    to_json,
)
from shared.storage.abc import Document, Scalar, StoredRecord, StoreError

DB_FILE_NAME: Final = "wecom_suite.sqlite3"
PURGE_INTERVAL_S: Final = 60.0

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_expires_at ON documents (expires_at)
    WHERE expires_at IS NOT NULL;
"""
# SQL is only ever assembled from these constant fragments (hence the S608 waivers below);
# every value, field path included, is a bound parameter.
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_COLUMNS = "key, doc, version, expires_at"


@dataclass
class _Write:
    """One queued write: the function the worker runs, and its outcome for the caller."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Queue:
    """Writes waiting for the next group commit; ``flushing``: a flush is already queued."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    writes: list[_Write] = dataclasses.field(default_factory=list)
    flushing: bool = False


class SQLiteStore:
    """:class:`~shared.storage.abc.DocumentStore` on one SQLite file."""

    name = "store"

    def __init__(
        self,
        path: Path,
        collections: Iterable[str],
        *,
        busy_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._collections = check_collections(collections)
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_connection: sqlite3.Connection | None = None
        self._last_purge = 0.0
        self._queue = _Queue()
        self.commits = 0  # group commits done (observability and tests)

    async def start(self) -> None:
        """Open both connections; if either fails, nothing stays open, so that the service's
        start-up retry (another process may hold the file's lock) really opens it again."""
        if self._executor is not None:
            return
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        try:
            await self._on(writer, self._open)
            # Opened once the schema exists (the writer made it).
            await self._on(reader, self._open_reader)
        except BaseException:
            await self._shut(writer, reader)
            raise
        self._executor, self._reader = writer, reader

    async def stop(self) -> None:
        writer, reader = self._executor, self._reader
        self._executor = self._reader = None
        await self._shut(writer, reader)

    async def _shut(
        self, writer: ThreadPoolExecutor | None, reader: ThreadPoolExecutor | None
    ) -> None:
        loop = asyncio.get_running_loop()
        if reader is not None:
            await loop.run_in_executor(reader, self._close_reader)
            reader.shutdown(wait=True)
        if writer is not None:
            await loop.run_in_executor(writer, self._close)
            writer.shutdown(wait=True)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # SQLite gives its -wal and -shm files the database file's mode, so the file is made
        # 0600 before SQLite first opens it (they hold the same encrypted secrets and ids).
        self.path.touch(mode=0o600, exist_ok=True)
        self.path.chmod(0o600)
        # isolation_level=None: no implicit transactions; reads autocommit, and writes run
        # in the explicit BEGIN IMMEDIATE ... COMMIT of their group commit.
        connection = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            connection.execute("PRAGMA journal_mode = WAL")
            # FULL: a permanent code that WeCom will not send again must survive a power cut.
            connection.execute("PRAGMA synchronous = FULL")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        # Files left by an older version that created them world-readable.
        for suffix in ("-wal", "-shm"):
            companion = self.path.with_name(self.path.name + suffix)
            if companion.exists():
                companion.chmod(0o600)
        self._connection = connection

    def _open_reader(self) -> None:
        connection = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            # This connection only reads: a bug writing through it would bypass group commit.
            connection.execute("PRAGMA query_only = ON")
        except BaseException:
            connection.close()
            raise
        self._read_connection = connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _close_reader(self) -> None:
        connection, self._read_connection = self._read_connection, None
        if connection is not None:
            connection.close()

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the writer's thread (outside any group commit)."""
        return await self._on(self._executor, function, *args)

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the reader's thread."""
        return await self._on(self._reader, function, *args)

    @staticmethod
    async def _on(executor: ThreadPoolExecutor | None, function: Callable[..., T], *args: Any) -> T:
        if executor is None:
            raise StoreError("the SQLite store is not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, function, *args)
        except sqlite3.Error as exc:
            # The class name says enough (locked, disk I/O); the message may quote SQL values.
            raise StoreError(f"SQLite failed: {type(exc).__name__}") from None

    async def _write(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in the next group commit; returns once it is committed.

        The first write of a batch queues one flush on the worker thread; writes arriving
        before the worker takes the queue join it, those arriving later queue the next flush.
        """
        executor = self._executor
        if executor is None:
            raise StoreError("the SQLite store is not started")
        loop = asyncio.get_running_loop()
        write = _Write(function, args, loop.create_future())
        with self._queue.lock:
            self._queue.writes.append(write)
            start_flush = not self._queue.flushing
            self._queue.flushing = True
        if start_flush:
            flushed = loop.run_in_executor(executor, self._flush)
            flushed.add_done_callback(_settle)
        result: T = await write.future
        return result

    def _flush(self) -> list[_Write]:
        """On the worker thread: run every queued write in one transaction, then commit.

        Each op gets a SAVEPOINT: an op that raises is rolled back to it alone and the
        others commit; it sees the effects of the ops before it (they share the
        transaction). If BEGIN or COMMIT fails, nothing was committed and every op fails.
        """
        with self._queue.lock:
            batch, self._queue.writes = self._queue.writes, []
            self._queue.flushing = False
        try:
            db = self._db()
            # IMMEDIATE takes the write lock up front (waiting up to busy_timeout for another
            # process), so no op meets SQLITE_BUSY halfway through the batch.
            db.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, StoreError) as exc:
            return _fail_all(batch, exc)
        try:
            for write in batch:
                db.execute("SAVEPOINT op")
                try:
                    write.result = write.function(*write.args)
                except Exception as exc:  # isolated: re-raised to its caller
                    # Fails itself (and so the batch) if SQLite already aborted the whole
                    # transaction, e.g. on a disk I/O error.
                    db.execute("ROLLBACK TO op")
                    write.error = exc
                db.execute("RELEASE op")
            self._purge_expired(self._clock())
            db.execute("COMMIT")
        except Exception as exc:  # every caller hears of it; none hangs
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            return _fail_all(batch, exc)
        self.commits += 1
        return batch

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError("the SQLite store is not started")
        return self._connection

    def _read_db(self) -> sqlite3.Connection:
        if self._read_connection is None:
            raise StoreError("the SQLite store is not started")
        return self._read_connection

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self._clock() + ttl

    def _purge_expired(self, now: float) -> None:
        # Reads already ignore expired rows; deleting them is housekeeping, done rarely.
        if now - self._last_purge >= PURGE_INTERVAL_S:
            self._last_purge = now
            self._db().execute(
                "DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )

    async def get(self, collection: str, key: str) -> Document | None:
        record = await self.get_record(collection, key)
        return None if record is None else record.doc

    async def get_record(self, collection: str, key: str) -> StoredRecord | None:
        require_collection(self._collections, collection)
        return await self._read(self._get_record, collection, key)

    def _get_record(self, collection: str, key: str) -> StoredRecord | None:
        # fetchall, not fetchone: the statement runs to its end, so its read transaction
        # (and the WAL snapshot it pins) ends here.
        rows = (
            self._read_db()
            .execute(
                f"SELECT {_COLUMNS} FROM documents WHERE collection = ? AND key = ? AND {_LIVE}",  # noqa: S608
                (collection, key, self._clock()),
            )
            .fetchall()
        )
        return _record(rows[0]) if rows else None

    async def put(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> int:
        require_collection(self._collections, collection)
        return await self._write(self._put, collection, key, to_json(doc), self._expiry(ttl))

    def _put(self, collection: str, key: str, body: str, expires_at: float | None) -> int:
        row = (
            self._db()
            .execute(
                "INSERT INTO documents (collection, key, doc, version, expires_at) "
                "VALUES (?, ?, ?, 1, ?) ON CONFLICT (collection, key) DO UPDATE SET "
                "doc = excluded.doc, expires_at = excluded.expires_at, "
                "version = documents.version + 1 RETURNING version",
                (collection, key, body, expires_at),
            )
            .fetchone()
        )
        return int(row[0])

    async def insert_if_absent(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> bool:
        require_collection(self._collections, collection)
        body, expires_at = to_json(doc), self._expiry(ttl)
        return await self._write(self._insert_if_absent, collection, key, body, expires_at)

    def _insert_if_absent(
        self, collection: str, key: str, body: str, expires_at: float | None
    ) -> bool:
        now = self._clock()
        # An expired row counts as absent: it is replaced in the same statement, so a lease
        # left by a crashed holder is taken over by exactly one contender.
        cursor = self._db().execute(
            "INSERT INTO documents (collection, key, doc, version, expires_at) "
            "VALUES (?, ?, ?, 1, ?) ON CONFLICT (collection, key) DO UPDATE SET "
            "doc = excluded.doc, expires_at = excluded.expires_at, version = 1 "
            "WHERE documents.expires_at IS NOT NULL AND documents.expires_at <= ?",
            (collection, key, body, expires_at, now),
        )
        return cursor.rowcount == 1

    async def compare_and_set(
        self,
        collection: str,
        key: str,
        expected_version: int,
        doc: Mapping[str, Any],
        *,
        ttl: float | None = None,
    ) -> bool:
        require_collection(self._collections, collection)
        args = (to_json(doc), self._expiry(ttl), collection, key, expected_version)
        return await self._write(self._compare_and_set, *args)

    def _compare_and_set(
        self, body: str, expires_at: float | None, collection: str, key: str, expected: int
    ) -> bool:
        cursor = self._db().execute(
            "UPDATE documents SET doc = ?, expires_at = ?, version = version + 1 "  # noqa: S608
            f"WHERE collection = ? AND key = ? AND version = ? AND {_LIVE}",
            (body, expires_at, collection, key, expected, self._clock()),
        )
        return cursor.rowcount == 1

    async def delete(self, collection: str, key: str) -> bool:
        require_collection(self._collections, collection)
        return await self._write(self._delete, collection, key, None)

    async def compare_and_delete(self, collection: str, key: str, expected_version: int) -> bool:
        require_collection(self._collections, collection)
        return await self._write(self._delete, collection, key, expected_version)

    def _delete(self, collection: str, key: str, expected: int | None) -> bool:
        sql = "DELETE FROM documents WHERE collection = ? AND key = ? RETURNING expires_at"
        params: tuple[Any, ...] = (collection, key)
        if expected is not None:
            sql = sql.replace(" RETURNING", f" AND version = ? AND {_LIVE} RETURNING")
            params = (collection, key, expected, self._clock())
        rows = self._db().execute(sql, params).fetchall()
        # The row goes whether live or expired; only a live one counts as deleted.
        return any(row[0] is None or row[0] > self._clock() for row in rows)

    async def find(self, collection: str, /, **equals: Scalar) -> list[StoredRecord]:
        require_collection(self._collections, collection)
        conditions, params = ["collection = ?", _LIVE], [collection, self._clock()]
        for field, value in equals.items():
            condition, values = _equals(f"$.{check_field(field)}", value)
            conditions.append(condition)
            params += values
        where = " AND ".join(conditions)
        sql = f"SELECT {_COLUMNS} FROM documents WHERE {where} ORDER BY key"  # noqa: S608
        return await self._read(self._select, sql, tuple(params))

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[StoredRecord]:
        return [_record(row) for row in self._read_db().execute(sql, params).fetchall()]


def _fail_all(batch: list[_Write], exc: BaseException) -> list[_Write]:
    for write in batch:
        write.error = exc
    return batch


def _settle(flushed: asyncio.Future[list[_Write]]) -> None:
    """On the event loop: hand each caller of a flushed batch its result or error."""
    if flushed.cancelled():
        return
    if (crash := flushed.exception()) is not None:
        raise RuntimeError("SQLite flush crashed") from crash  # _flush catches what it expects
    for write in flushed.result():
        if write.future.done():  # the caller was cancelled; the write happened anyway
            continue
        if write.error is None:
            write.future.set_result(write.result)
        else:
            write.future.set_exception(_store_error(write.error))


def _store_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        # The class name says enough (locked, disk I/O); the message may quote SQL values.
        return StoreError(f"SQLite failed: {type(exc).__name__}")
    return exc


def _record(row: tuple[Any, ...]) -> StoredRecord:
    key, body, version, expires_at = row
    return StoredRecord(key=key, doc=json.loads(body), version=version, expires_at=expires_at)


def _equals(path: str, value: Scalar) -> tuple[str, list[Any]]:
    """A condition matching MongoDB's equality: same JSON type and value; None: null or missing.

    json_extract alone would conflate true with 1 and a string with a nested object's text.
    """
    if value is None:
        return "(json_type(doc, ?) IS NULL OR json_type(doc, ?) = 'null')", [path, path]
    if isinstance(value, bool):
        return "json_type(doc, ?) = ?", [path, "true" if value else "false"]
    kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
    return f"(json_type(doc, ?) IN {kinds} AND json_extract(doc, ?) = ?)", [path, path, value]
