"""The compare-and-set helper (``shared/storage/cas.py``) on every store backend: no update is
lost among concurrent writers, a lost race decides again on what won, and it gives up typed.

A rival writer is forced in between the helper's read and its write by :class:`RacingStore`,
so lost races happen on purpose and every time, not by luck of scheduling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from shared.backoff import Backoff
from shared.storage import (
    ABSENT,
    CAS_BACKOFF,
    ContentionError,
    Decision,
    DocumentStore,
    Keep,
    StoredRecord,
    StoreError,
    Write,
    compare_and_update,
)
from shared.storage.abc import Document, Scalar
from tests.support.store_backends import BACKENDS, Backend, FakeClock

COLLECTIONS = ("counters",)
# Lost races are forced here; waiting between them would only slow the suite down.
NO_WAIT = Backoff(initial_s=0.0, cap_s=0.0, max_attempts=5)


class RacingStore:
    """A :class:`DocumentStore` whose rival writes ``key`` just before each conditional write.

    ``races`` such interventions happen (then it behaves like the store it wraps); each one
    stores ``{"n": <current n> + 100}`` through the rival, as another replica would.
    """

    def __init__(self, inner: DocumentStore, rival: DocumentStore, races: int) -> None:
        self.inner = inner
        self.rival = rival
        self.races = races
        self.reads = 0

    @property
    def name(self) -> str:
        return self.inner.name

    async def _intervene(self, collection: str, key: str) -> None:
        if self.races > 0:
            self.races -= 1
            current = await self.rival.get(collection, key)
            await self.rival.put(collection, key, {"n": (current or {"n": 0})["n"] + 100})

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def get(self, collection: str, key: str) -> Document | None:
        return await self.inner.get(collection, key)

    async def get_record(self, collection: str, key: str) -> StoredRecord | None:
        self.reads += 1
        return await self.inner.get_record(collection, key)

    async def put(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> int:
        return await self.inner.put(collection, key, doc, ttl=ttl)

    async def insert_if_absent(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> bool:
        await self._intervene(collection, key)
        return await self.inner.insert_if_absent(collection, key, doc, ttl=ttl)

    async def compare_and_set(
        self,
        collection: str,
        key: str,
        expected_version: int,
        doc: Mapping[str, Any],
        *,
        ttl: float | None = None,
    ) -> bool:
        await self._intervene(collection, key)
        return await self.inner.compare_and_set(collection, key, expected_version, doc, ttl=ttl)

    async def delete(self, collection: str, key: str) -> bool:
        return await self.inner.delete(collection, key)

    async def compare_and_delete(self, collection: str, key: str, expected_version: int) -> bool:
        return await self.inner.compare_and_delete(collection, key, expected_version)

    async def find(self, collection: str, /, **equals: Scalar) -> list[StoredRecord]:
        return await self.inner.find(collection, **equals)


def increment(record: StoredRecord | None) -> Decision[int]:
    """Add one to ``n`` (0 when absent); answer the new value."""
    value = (0 if record is None else int(record.doc["n"])) + 1
    return Write({"n": value}, value)


@pytest.fixture(params=BACKENDS)
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[list[DocumentStore]]:
    """Two started stores on one backend: two processes or replicas sharing the data."""
    backend: Backend = request.param(tmp_path, COLLECTIONS)
    opened = [backend.open(clock), backend.open(clock)]
    for store in opened:
        await store.start()
    yield opened
    for store in opened:
        await store.stop()
    await backend.dispose()


def racing(stores: list[DocumentStore], races: int) -> RacingStore:
    return RacingStore(stores[0], stores[1], races)


async def test_concurrent_writers_lose_no_update(stores: list[DocumentStore]) -> None:
    """Twenty writers on two stores, five increments each: every one of the 100 lands."""

    async def writer(store: DocumentStore) -> list[int]:
        return [await compare_and_update(store, "counters", "n", increment) for _ in range(5)]

    answers = await asyncio.gather(*(writer(stores[i % 2]) for i in range(20)))
    record = await stores[0].get_record("counters", "n")
    assert record is not None
    assert (record.doc, record.version) == ({"n": 100}, 100)
    # Each writer saw its own increments land in order, and no two writers got one value.
    seen = [value for values in answers for value in values]
    assert all(values == sorted(values) for values in answers)
    assert sorted(seen) == list(range(1, 101))


async def test_an_absent_document_is_created_once_and_built_on(
    stores: list[DocumentStore],
) -> None:
    """Writers racing on a missing document: one creates it, the others re-read and add."""
    answers = await asyncio.gather(
        *(compare_and_update(stores[i % 2], "counters", "new", increment) for i in range(10))
    )
    record = await stores[1].get_record("counters", "new")
    assert record is not None
    assert (record.doc, record.version) == ({"n": 10}, 10)
    assert sorted(answers) == list(range(1, 11))


async def test_a_lost_race_decides_again_on_the_record_that_won(
    stores: list[DocumentStore],
) -> None:
    """``decide`` is pure: after a lost race it is called again with the rival's record."""
    await stores[0].put("counters", "n", {"n": 1})
    seen: list[tuple[int, int]] = []

    def decide(record: StoredRecord | None) -> Decision[int]:
        assert record is not None
        seen.append((record.version, record.doc["n"]))
        return increment(record)

    answer = await compare_and_update(racing(stores, races=1), "counters", "n", decide)
    assert seen == [(1, 1), (2, 101)]
    assert answer == 102
    assert await stores[1].get("counters", "n") == {"n": 102}


async def test_a_lost_creation_decides_again_on_the_created_document(
    stores: list[DocumentStore],
) -> None:
    """Creation is insert-if-absent: losing it to a rival re-reads the rival's document."""
    seen: list[StoredRecord | None] = []

    def decide(record: StoredRecord | None) -> Decision[int]:
        seen.append(record)
        return increment(record)

    answer = await compare_and_update(racing(stores, races=1), "counters", "fresh", decide)
    assert seen[0] is None
    assert seen[1] is not None
    assert (seen[1].version, seen[1].doc) == (1, {"n": 100})
    assert answer == 101
    record = await stores[0].get_record("counters", "fresh")
    assert record is not None
    assert (record.doc, record.version) == ({"n": 101}, 2)


async def test_it_gives_up_after_the_cap_with_a_retryable_error(
    stores: list[DocumentStore],
) -> None:
    """Every try lost: after ``max_attempts`` tries, one typed, retryable store error."""
    await stores[0].put("counters", "n", {"n": 0})
    calls = 0

    def decide(record: StoredRecord | None) -> Decision[int]:
        nonlocal calls
        calls += 1
        return increment(record)

    store = racing(stores, races=1000)
    with pytest.raises(ContentionError, match="5 compare-and-set races") as raised:
        await compare_and_update(store, "counters", "n", decide, backoff=NO_WAIT)
    assert calls == 5
    assert isinstance(raised.value, StoreError)
    assert raised.value.retryable
    assert raised.value.code == "store_contention"
    # Only the rival's writes landed.
    assert await stores[1].get("counters", "n") == {"n": 500}


async def test_keep_writes_nothing(stores: list[DocumentStore]) -> None:
    """A decision to keep the document answers at once and leaves its version alone."""
    await stores[0].put("counters", "n", {"n": 7})

    def decide(record: StoredRecord | None) -> Decision[str]:
        return Keep("unchanged")

    assert await compare_and_update(stores[0], "counters", "n", decide) == "unchanged"
    assert await compare_and_update(stores[0], "counters", "absent", decide) == "unchanged"
    record = await stores[1].get_record("counters", "n")
    assert record is not None
    assert record.version == 1
    assert await stores[1].get("counters", "absent") is None


async def test_written_documents_get_the_ttl(stores: list[DocumentStore], clock: FakeClock) -> None:
    """Both the creating and the conditional write carry the caller's expiry."""
    await compare_and_update(stores[0], "counters", "n", increment, ttl=10)
    clock.advance(5)
    await compare_and_update(stores[0], "counters", "n", increment, ttl=10)
    record = await stores[1].get_record("counters", "n")
    assert record is not None
    assert record.expires_at == pytest.approx(clock.now + 10, abs=0.01)
    clock.advance(11)
    assert await stores[1].get("counters", "n") is None


async def test_a_known_current_record_saves_the_read(stores: list[DocumentStore]) -> None:
    """A record the caller wrote itself is decided on without a read; a stale one costs one."""
    version = await stores[0].put("counters", "n", {"n": 1})
    store = racing(stores, races=0)
    mine = StoredRecord("n", {"n": 1}, version, None)
    assert await compare_and_update(store, "counters", "n", increment, known=mine) == 2
    assert store.reads == 0
    assert await compare_and_update(store, "counters", "n", increment, known=mine) == 3
    assert store.reads == 1
    assert await stores[1].get("counters", "n") == {"n": 3}


async def test_an_expected_absence_saves_the_read(stores: list[DocumentStore]) -> None:
    """``known=ABSENT`` creates a new document without reading; when the document exists
    after all, one lost race and a read later the update still builds on it."""
    store = racing(stores, races=0)
    assert await compare_and_update(store, "counters", "new", increment, known=ABSENT) == 1
    assert store.reads == 0
    await stores[1].put("counters", "old", {"n": 7})
    assert await compare_and_update(store, "counters", "old", increment, known=ABSENT) == 8
    assert store.reads == 1
    assert await stores[1].get("counters", "old") == {"n": 8}
    assert await stores[1].get("counters", "new") == {"n": 1}


async def test_a_keep_decided_on_a_guess_is_checked_by_a_read(
    stores: list[DocumentStore],
) -> None:
    """Writing nothing because of a guessed record could answer for a document that is not
    there: the helper reads, and decides again on what it found."""
    await stores[1].put("counters", "n", {"n": 5})
    store = racing(stores, races=0)

    def observe(record: StoredRecord | None) -> Decision[int | None]:
        return Keep(None if record is None else int(record.doc["n"]))

    assert await compare_and_update(store, "counters", "n", observe, known=ABSENT) == 5
    stale = StoredRecord("n", {"n": 1}, 1, None)
    assert await compare_and_update(store, "counters", "n", observe, known=stale) == 5
    assert store.reads == 2


async def test_one_allowed_attempt_gives_up_after_one_lost_race(
    stores: list[DocumentStore],
) -> None:
    """A policy of a single try does not retry at all: the first lost race is final."""
    await stores[0].put("counters", "n", {"n": 0})
    store = racing(stores, races=1)
    once = Backoff(initial_s=0.0, cap_s=0.0, max_attempts=1)
    with pytest.raises(ContentionError, match="1 compare-and-set races"):
        await compare_and_update(store, "counters", "n", increment, backoff=once)
    assert await stores[1].get("counters", "n") == {"n": 100}


def test_the_default_policy_is_bounded_and_jittered() -> None:
    """Writers back off by random amounts (so they stop colliding) and give up eventually."""
    assert CAS_BACKOFF.max_attempts is not None
    assert CAS_BACKOFF.jitter_s > 0
    total = sum(CAS_BACKOFF.base_delay(n) for n in range(1, CAS_BACKOFF.max_attempts))
    assert total < 10.0
