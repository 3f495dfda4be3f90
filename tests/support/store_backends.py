"""The store backends every store-level contract suite runs on: the SQLite file, MongoDB through
the in-process fake, and a real MongoDB when ``MONGO_URL`` is set (each use gets its own
database, dropped afterwards). ``BACKENDS`` parametrizes a fixture; each entry builds a
backend from the test's ``tmp_path`` and the collections the suite uses.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import bson
import pytest
from pymongo import AsyncMongoClient

from shared.storage import DocumentStore
from shared.storage.mongo import MongoStore
from shared.storage.sqlite import DB_FILE_NAME, SQLiteStore
from tests.support.fake_mongo import FakeMongoServer


class FakeClock:
    """Unix time that moves only when a test says so (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Backend(Protocol):
    """How the suite opens stores on one shared backend and reads what it holds at rest."""

    def open(self, clock: Callable[[], float]) -> DocumentStore: ...

    async def raw_bytes(self) -> bytes: ...

    async def dispose(self) -> None: ...


class SQLiteBackend:
    def __init__(self, folder: Path, collections: Sequence[str]) -> None:
        self.path = folder / DB_FILE_NAME
        self.collections = tuple(collections)

    def open(self, clock: Callable[[], float]) -> DocumentStore:
        return SQLiteStore(self.path, self.collections, clock=clock)

    async def raw_bytes(self) -> bytes:
        # The WAL holds recent commits until a checkpoint: read it too.
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return b"".join(path.read_bytes() for path in files if path.exists())

    async def dispose(self) -> None:
        return None


class FakeMongoBackend:
    def __init__(self, collections: Sequence[str]) -> None:
        self.server = FakeMongoServer()
        self.collections = tuple(collections)

    def open(self, clock: Callable[[], float]) -> DocumentStore:
        return MongoStore(self.server.client(), "test", self.collections, clock=clock)

    async def raw_bytes(self) -> bytes:
        return repr(self.server.data).encode()

    async def dispose(self) -> None:
        return None


class RealMongoBackend:
    def __init__(self, url: str, collections: Sequence[str]) -> None:
        self.url = url
        self.collections = tuple(collections)
        self.database = f"wecom_test_{uuid.uuid4().hex[:12]}"

    def _client(self) -> AsyncMongoClient[dict[str, Any]]:
        return AsyncMongoClient(self.url, tz_aware=True, serverSelectionTimeoutMS=5000)

    def open(self, clock: Callable[[], float]) -> DocumentStore:
        return MongoStore(self._client(), self.database, self.collections, clock=clock)

    async def raw_bytes(self) -> bytes:
        client = self._client()
        try:
            chunks = []
            for name in self.collections:
                async for raw in client[self.database][name].find({}):
                    chunks.append(bson.encode(raw))
            return b"".join(chunks)
        finally:
            await client.close()

    async def dispose(self) -> None:
        client = self._client()
        try:
            await client.drop_database(self.database)
        finally:
            await client.close()


_NO_MONGO = "MONGO_URL is not set: the real-MongoDB run of the store contracts is optional"


def _real_mongo(tmp_path: Path, collections: Sequence[str]) -> Backend:
    url = os.environ.get("MONGO_URL")
    if not url:
        pytest.skip(reason=_NO_MONGO)
    return RealMongoBackend(url, collections)


def _fake_mongo(tmp_path: Path, collections: Sequence[str]) -> Backend:
    return FakeMongoBackend(collections)


BACKENDS = [
    pytest.param(SQLiteBackend, id="sqlite"),
    pytest.param(_fake_mongo, id="mongo-fake"),
    pytest.param(_real_mongo, id="mongo-real", marks=pytest.mark.integration),
]
