"""The document-store contract, written once against ``DocumentStore`` and run on every backend.

Backends: the SQLite file (two instances on one file stand for two processes), MongoDB
through the in-process fake of ``tests/support/fake_mongo.py`` (two clients on one fake
server stand for two replicas), and a real MongoDB when ``MONGO_URL`` is set -- each test
then gets its own database, dropped afterwards. Time is a fake clock, so expiry is tested
without sleeping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shared.storage import DocumentStore, SecretBox, UnknownCollection
from tests.support.store_backends import BACKENDS, Backend, FakeClock

COLLECTIONS = ("tokens", "leases")


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made: Backend = request.param(tmp_path, COLLECTIONS)
    yield made
    await made.dispose()


@pytest.fixture
async def open_store(backend: Backend, clock: FakeClock) -> AsyncIterator[Callable[[], Any]]:
    """A factory of started stores on the test's backend, each stopped after the test."""
    opened: list[DocumentStore] = []

    async def make() -> DocumentStore:
        store = backend.open(clock)
        await store.start()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.stop()


@pytest.fixture
async def store(open_store: Callable[[], Any]) -> DocumentStore:
    made: DocumentStore = await open_store()
    return made


async def test_put_then_get_returns_the_document(store: DocumentStore) -> None:
    """What was written is what is read, with nested JSON intact."""
    doc = {"token": "t1", "n": 3, "ok": True, "nested": {"list": [1, "a", None]}}
    assert await store.put("tokens", "corp:wx1", doc) == 1
    assert await store.get("tokens", "corp:wx1") == doc
    assert await store.get("tokens", "corp:other") is None


async def test_put_overwrites_and_bumps_the_version(store: DocumentStore) -> None:
    """Each write yields a new version, which is what compare-and-set checks."""
    await store.put("tokens", "k", {"v": 1})
    assert await store.put("tokens", "k", {"v": 2}) == 2
    record = await store.get_record("tokens", "k")
    assert record is not None
    assert (record.key, record.doc, record.version, record.expires_at) == ("k", {"v": 2}, 2, None)


async def test_collections_are_separate_namespaces(store: DocumentStore) -> None:
    """The same key in two collections names two documents."""
    await store.put("tokens", "k", {"in": "tokens"})
    await store.put("leases", "k", {"in": "leases"})
    assert await store.get("tokens", "k") == {"in": "tokens"}
    assert await store.get("leases", "k") == {"in": "leases"}


async def test_insert_if_absent_creates_once(store: DocumentStore) -> None:
    """The key is unique: a second insert is refused and leaves the first document alone."""
    assert await store.insert_if_absent("leases", "corp:wx1", {"holder": "a"}) is True
    assert await store.insert_if_absent("leases", "corp:wx1", {"holder": "b"}) is False
    assert await store.get("leases", "corp:wx1") == {"holder": "a"}


async def test_concurrent_inserts_have_exactly_one_winner(
    open_store: Callable[[], Any],
) -> None:
    """Replicas racing for one lease: exactly one of them gets it."""
    stores: list[DocumentStore] = [await open_store(), await open_store()]
    results = await asyncio.gather(
        *(
            stores[i % 2].insert_if_absent("leases", "suite", {"holder": i}, ttl=30)
            for i in range(20)
        )
    )
    assert results.count(True) == 1
    winner = results.index(True)
    assert await stores[1].get("leases", "suite") == {"holder": winner}


async def test_insert_if_absent_takes_over_an_expired_document(
    store: DocumentStore, clock: FakeClock
) -> None:
    """A lease left by a crashed holder is free again once it expires."""
    assert await store.insert_if_absent("leases", "suite", {"holder": "dead"}, ttl=5)
    clock.advance(6)
    assert await store.insert_if_absent("leases", "suite", {"holder": "new"}, ttl=5) is True
    record = await store.get_record("leases", "suite")
    assert record is not None
    assert (record.doc, record.version) == ({"holder": "new"}, 1)


async def test_compare_and_set_succeeds_on_the_current_version(store: DocumentStore) -> None:
    """A writer holding the current version may write, and the version moves on."""
    await store.put("tokens", "k", {"v": 1})
    assert await store.compare_and_set("tokens", "k", 1, {"v": 2}) is True
    record = await store.get_record("tokens", "k")
    assert record is not None
    assert (record.doc, record.version) == ({"v": 2}, 2)
    assert await store.compare_and_set("tokens", "k", 1, {"v": 3}) is False
    assert await store.get("tokens", "k") == {"v": 2}


async def test_compare_and_set_on_a_missing_document_fails(store: DocumentStore) -> None:
    """Compare-and-set never creates: creation is insert_if_absent's job."""
    assert await store.compare_and_set("tokens", "nope", 1, {"v": 1}) is False
    assert await store.get("tokens", "nope") is None


async def test_concurrent_compare_and_set_has_exactly_one_winner(
    open_store: Callable[[], Any],
) -> None:
    """Two writers read the same version; one wins and the other learns it lost."""
    first: DocumentStore = await open_store()
    second: DocumentStore = await open_store()
    await first.put("tokens", "k", {"writer": None})
    record = await second.get_record("tokens", "k")
    assert record is not None
    results = await asyncio.gather(
        first.compare_and_set("tokens", "k", record.version, {"writer": "first"}),
        second.compare_and_set("tokens", "k", record.version, {"writer": "second"}),
    )
    assert sorted(results) == [False, True]
    expected = "first" if results[0] else "second"
    assert await first.get("tokens", "k") == {"writer": expected}


async def test_expired_documents_are_invisible(store: DocumentStore, clock: FakeClock) -> None:
    """Expiry is honoured on every read, before any purge has run."""
    await store.put("tokens", "k", {"token": "t", "kind": "corp"}, ttl=10)
    record = await store.get_record("tokens", "k")
    assert record is not None
    assert record.expires_at == pytest.approx(clock.now + 10, abs=0.01)
    clock.advance(9)
    assert await store.get("tokens", "k") == {"token": "t", "kind": "corp"}
    clock.advance(2)
    assert await store.get("tokens", "k") is None
    assert await store.find("tokens", kind="corp") == []
    assert await store.compare_and_set("tokens", "k", record.version, {"token": "u"}) is False
    assert await store.delete("tokens", "k") is False


async def test_put_without_ttl_clears_an_expiry(store: DocumentStore, clock: FakeClock) -> None:
    """An overwrite states the expiry afresh; no ttl means the document stays."""
    await store.put("tokens", "k", {"v": 1}, ttl=1)
    await store.put("tokens", "k", {"v": 2})
    clock.advance(100)
    assert await store.get("tokens", "k") == {"v": 2}


async def test_find_matches_top_level_fields_by_equality(store: DocumentStore) -> None:
    """Equality keeps JSON types apart: true is not 1, and None matches a missing field."""
    await store.put("tokens", "c", {"corp": "wx1", "kind": "corp", "live": True, "n": 1})
    await store.put("tokens", "a", {"corp": "wx1", "kind": "jsapi", "live": 1, "n": 1.0})
    await store.put("tokens", "b", {"corp": "wx2", "kind": "corp", "nested": {"corp": "wx1"}})
    found = await store.find("tokens", corp="wx1")
    assert [record.key for record in found] == ["a", "c"]
    assert found[1].doc["kind"] == "corp"
    assert [r.key for r in await store.find("tokens", corp="wx1", kind="corp")] == ["c"]
    assert [r.key for r in await store.find("tokens", live=True)] == ["c"]
    assert [r.key for r in await store.find("tokens", live=1)] == ["a"]
    assert [r.key for r in await store.find("tokens", n=1)] == ["a", "c"]
    assert [r.key for r in await store.find("tokens", n=None)] == ["b"]
    assert await store.find("tokens", corp="wx3") == []
    assert [r.key for r in await store.find("tokens")] == ["a", "b", "c"]


async def test_delete_removes_the_document(store: DocumentStore) -> None:
    """Delete reports whether there was something to delete."""
    await store.put("tokens", "k", {"v": 1})
    assert await store.delete("tokens", "k") is True
    assert await store.get("tokens", "k") is None
    assert await store.delete("tokens", "k") is False
    assert await store.insert_if_absent("tokens", "k", {"v": 2}) is True


async def test_compare_and_delete_only_removes_the_expected_version(
    store: DocumentStore,
) -> None:
    """A holder releases its own lease, never one that was taken over meanwhile."""
    await store.insert_if_absent("leases", "suite", {"holder": "a"})
    await store.compare_and_set("leases", "suite", 1, {"holder": "b"})
    assert await store.compare_and_delete("leases", "suite", 1) is False
    assert await store.compare_and_delete("leases", "suite", 2) is True
    assert await store.get("leases", "suite") is None


async def test_two_instances_see_each_others_writes(
    open_store: Callable[[], Any],
) -> None:
    """Two processes (or replicas) on one store share state, with no cache in between."""
    first: DocumentStore = await open_store()
    second: DocumentStore = await open_store()
    await first.put("tokens", "k", {"by": "first"})
    assert await second.get("tokens", "k") == {"by": "first"}
    assert await second.compare_and_set("tokens", "k", 1, {"by": "second"})
    assert await first.get("tokens", "k") == {"by": "second"}
    assert await second.delete("tokens", "k")
    assert await first.get("tokens", "k") is None


async def test_data_survives_a_restart(backend: Backend, clock: FakeClock) -> None:
    """A suite_ticket or permanent code written before a restart is there after it."""
    first = backend.open(clock)
    await first.start()
    await first.put("tokens", "ticket", {"value": "x"})
    await first.stop()
    second = backend.open(clock)
    await second.start()
    try:
        assert await second.get("tokens", "ticket") == {"value": "x"}
    finally:
        await second.stop()


async def test_sealed_values_are_stored_and_never_in_clear(
    store: DocumentStore, backend: Backend
) -> None:
    """Secrets reach the backend only sealed, and open again with the same context."""
    box = SecretBox(os.urandom(32))
    secret = f"permanent-code-{uuid.uuid4().hex}"
    context = "corp_auth/wx1/permanent_code"
    await store.put("tokens", "wx1", {"permanent_code": box.seal(secret, context=context)})
    doc = await store.get("tokens", "wx1")
    assert doc is not None
    assert box.open(doc["permanent_code"], context=context) == secret
    assert secret.encode() not in await backend.raw_bytes()


async def test_undeclared_collections_are_refused(store: DocumentStore) -> None:
    """A typo in a collection name fails loudly instead of writing where no index exists."""
    with pytest.raises(UnknownCollection):
        await store.put("tokenz", "k", {"v": 1})
