"""What each store backend sets up beyond the shared contract: SQLite pragmas, Mongo indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.settings import StoreSettings
from shared.storage import create_store
from shared.storage.mongo import MongoStore
from shared.storage.sqlite import DB_FILE_NAME, SQLiteStore
from tests.support.fake_mongo import FakeMongoServer


async def test_sqlite_store_uses_wal_and_a_private_file(tmp_path: Path) -> None:
    """WAL lets other processes read while one writes; the file holds secrets, so 0600."""
    store = SQLiteStore(tmp_path / "sub" / DB_FILE_NAME, ["tokens"])
    await store.start()
    await store.put("tokens", "k", {"v": 1})
    await store.stop()
    path = tmp_path / "sub" / DB_FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_wal_and_shm_files_are_private_too(tmp_path: Path) -> None:
    """The -wal and -shm files hold the same data as the database, so they are 0600 as well."""
    path = tmp_path / DB_FILE_NAME
    store = SQLiteStore(path, ["tokens"])
    await store.start()
    try:
        await store.put("tokens", "k", {"v": 1})
        for suffix in ("-wal", "-shm"):
            companion = path.with_name(path.name + suffix)
            assert companion.exists()
            assert companion.stat().st_mode & 0o777 == 0o600, suffix
    finally:
        await store.stop()


async def test_sqlite_tightens_companion_files_left_world_readable(tmp_path: Path) -> None:
    """A -wal file an older version left at 0644 is made 0600 when the store opens."""
    path = tmp_path / DB_FILE_NAME
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE t (x)")
        path.chmod(0o644)
        wal = path.with_name(path.name + "-wal")
        connection.execute("INSERT INTO t VALUES (1)")
        connection.commit()  # the WAL file stays while this connection is open
        wal.chmod(0o644)
        store = SQLiteStore(path, ["tokens"])
        await store.start()
        try:
            assert wal.stat().st_mode & 0o777 == 0o600
            assert path.stat().st_mode & 0o777 == 0o600
        finally:
            await store.stop()


async def test_mongo_store_creates_ttl_indexes_at_start() -> None:
    """The server purges expired documents on its own once the TTL index exists."""
    server = FakeMongoServer()
    store = MongoStore(server.client(), "db", ["tokens", "leases"])
    await store.start()
    await store.start()  # idempotent: a restart meets the existing indexes
    await store.stop()
    for name in ("tokens", "leases"):
        index = server.indexes[("db", name)]["expires_at_ttl"]
        assert (index["key"], index["expireAfterSeconds"]) == ("expires_at", 0)


def test_factory_picks_sqlite_without_mongo_url(tmp_path: Path) -> None:
    """The embedded default needs no server: one file in DATA_DIR."""
    store = create_store(["tokens"], mongo_url=None, mongo_db="x", data_dir=tmp_path)
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / DB_FILE_NAME


async def test_factory_picks_mongo_with_mongo_url(tmp_path: Path) -> None:
    """MONGO_URL selects MongoDB; building the store does not connect yet."""
    url = SecretStr("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100")
    store = create_store(["tokens"], mongo_url=url, mongo_db="x", data_dir=tmp_path)
    assert isinstance(store, MongoStore)
    await store.stop()


def test_store_settings_read_the_public_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """MONGO_URL, MONGO_DB, DATA_DIR and DATA_KEY, with design.md's defaults."""
    for name in ("MONGO_URL", "MONGO_DB", "DATA_DIR", "DATA_KEY"):
        monkeypatch.delenv(name, raising=False)
    defaults = StoreSettings()
    assert (defaults.mongo_url, defaults.mongo_db, defaults.data_dir) == (
        None,
        "wecom_suite",
        Path("data"),
    )
    monkeypatch.setenv("MONGO_URL", "mongodb://db:27017")
    monkeypatch.setenv("DATA_DIR", "/var/lib/wecom")
    # A well-formed key (base64 of 32 bytes): the format is the settings model's to check.
    key = "a2V5" * 10 + "a2U="
    monkeypatch.setenv("DATA_KEY", key)
    configured = StoreSettings()
    assert configured.mongo_url is not None
    assert configured.data_dir == Path("/var/lib/wecom")
    assert key not in repr(configured)


async def test_sqlite_store_purges_expired_rows_lazily(tmp_path: Path) -> None:
    """Expired rows leave the file on a later write, so leases and tokens do not pile up."""
    now = [1_000_000.0]
    store = SQLiteStore(tmp_path / DB_FILE_NAME, ["tokens"], clock=lambda: now[0])
    await store.start()
    await store.put("tokens", "old", {"v": 1}, ttl=1)
    now[0] += 120
    await store.put("tokens", "new", {"v": 2})
    await store.stop()
    with sqlite3.connect(tmp_path / DB_FILE_NAME) as connection:
        keys = connection.execute("SELECT key FROM documents").fetchall()
    assert keys == [("new",)]
