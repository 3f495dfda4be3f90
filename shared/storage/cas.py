"""The one read-decide-write loop on a :class:`DocumentStore`: optimistic concurrency with
bounded, jittered retries (:func:`compare_and_update`) and its give-up error.

Repositories express a change as a pure decision on the stored record; this module owns
the re-read, the conditional write and the waiting, so no store writes that loop again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar

from tenacity import retry_if_exception_type

from shared.backoff import Backoff
from shared.storage.abc import DocumentStore, StoredRecord, StoreError

__all__ = [
    "ABSENT",
    "CAS_BACKOFF",
    "ContentionError",
    "Decision",
    "Keep",
    "Write",
    "compare_and_update",
]

T = TypeVar("T")

# A lost race means another writer has just finished, so the first retry comes almost at
# once; under heavy contention the waits grow to 50 ms and the jitter (up to 10 ms) spreads
# the losers so they stop colliding. 100 attempts (~5 s) is ample -- 500 writers started at
# once on one SQLite document all landed within 49 -- yet short enough that a message stuck
# on a hot document goes back to the bus (retryable) instead of holding a consumer slot.
CAS_BACKOFF: Final = Backoff(
    initial_s=0.001, factor=2.0, cap_s=0.05, jitter_s=0.01, max_attempts=100
)


class ContentionError(StoreError):
    """A compare-and-set lost too many races in a row; retrying the message later helps."""

    code = "store_contention"
    reason = "too many concurrent writers on one document"


@dataclass(frozen=True, slots=True)
class Write(Generic[T]):
    """Store ``doc`` if the document is still the one decided on, then answer ``result``."""

    doc: Mapping[str, Any]
    result: T


@dataclass(frozen=True, slots=True)
class Keep(Generic[T]):
    """Write nothing and answer ``result`` (the change is refused or already there)."""

    result: T


Decision = Write[T] | Keep[T]


class _LostRace(Exception):
    """Another writer changed the document between the read and the write."""


# ``known=ABSENT``: the caller expects the document not to exist yet (a new request id, a
# content never sent), so the first try creates it without reading.
ABSENT: Final = "absent"


async def compare_and_update(
    store: DocumentStore,
    collection: str,
    key: str,
    decide: Callable[[StoredRecord | None], Decision[T]],
    *,
    ttl: float | None = None,
    backoff: Backoff = CAS_BACKOFF,
    known: StoredRecord | Literal["absent"] | None = None,
) -> T:
    """Read the document, let ``decide`` choose, and write only if nobody wrote meanwhile.

    A lost race re-reads and calls ``decide`` again on the new record, waiting between tries
    as ``backoff`` says; so ``decide`` must be pure (no side effects, same answer for the
    same record). A :class:`Write` on an absent document creates it with
    ``insert_if_absent``, otherwise it is a ``compare_and_set`` on the version read.

    Args:
        store: the document store.
        collection: the document's collection.
        key: the document's key.
        decide: from the live record (None: absent) to :class:`Write` or :class:`Keep`. The
            version after a write is the one read + 1, or 1 for a created document.
        ttl: the expiry of a written document in seconds from now (None: never expires).
        backoff: the retry policy; its ``max_attempts`` bounds the number of tries.
        known: a record the caller believes current (one it wrote itself), or
            :data:`ABSENT` when it expects no document: decided on in the first try instead
            of reading. A wrong guess costs one lost race when ``decide`` writes; a
            :class:`Keep` decided on a guess is checked against a real read first.

    Returns:
        The ``result`` of the decision that was kept or written.

    Raises:
        ContentionError: every try lost its race (retryable).
        StoreError: the store failed (not retried here).
    """
    guess = known
    tries = 0

    async def attempt() -> T:
        nonlocal guess, tries
        tries += 1
        if guess is None:
            record = await store.get_record(collection, key)
        else:
            record = None if guess == ABSENT else guess
        guessed, guess = guess is not None, None
        decision = decide(record)
        if isinstance(decision, Keep):
            if guessed:
                raise _LostRace  # only a real read may decide to write nothing
            return decision.result
        if record is None:
            written = await store.insert_if_absent(collection, key, decision.doc, ttl=ttl)
        else:
            written = await store.compare_and_set(
                collection, key, record.version, decision.doc, ttl=ttl
            )
        if not written:
            raise _LostRace
        return decision.result

    # The first try runs outside the retry machinery: it nearly always wins, and building a
    # tenacity loop for it cost about a tenth of the notifier's CPU. A lost race is retried
    # at once (the winner has just finished), then with the backoff's growing waits.
    try:
        return await attempt()
    except _LostRace:
        if backoff.max_attempts == 1:
            raise _gave_up(collection, tries) from None
    remaining = None if backoff.max_attempts is None else backoff.max_attempts - 1
    retries = dataclasses.replace(backoff, max_attempts=remaining)
    try:
        result: T = await retries.run(attempt, retry=retry_if_exception_type(_LostRace))
    except _LostRace:
        raise _gave_up(collection, tries) from None
    return result


def _gave_up(collection: str, tries: int) -> ContentionError:
    return ContentionError(f"a {collection} document lost {tries} compare-and-set races in a row")
