"""The document store every stateful service builds its repositories on.

Deliberately small: a collection holds JSON documents under a unique string key, each with
a version (for optimistic concurrency) and an optional expiry. Every method is one atomic
single-document step on both backends -- no multi-document transactions, which is what
scales on a MongoDB cluster and what the in-process fake can model faithfully.

Expired documents are invisible to every read and write at once, whatever the backend's
purge schedule (SQLite purges lazily, MongoDB's TTL monitor runs about once a minute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from shared.errors import ServiceError, Unavailable

# A JSON document: what both backends store faithfully (str, int, float, bool, None, lists
# and nested objects with string keys). Seal secrets with SecretBox before storing them.
Document = dict[str, Any]
Scalar = str | int | float | bool | None


class StoreError(Unavailable):
    """The store could not be reached or answered with an error; a retry may help."""

    code = "store_unavailable"
    reason = "the data store is unavailable"


class StoreAuthenticationFailed(StoreError):
    """The store's server refused the credentials; retried at start like an absent server
    (the operator may fix the user meanwhile), but logged as an error."""

    code = "store_authentication_failed"
    reason = "the data store refused the credentials"


class UnknownCollection(ServiceError):
    """A collection was used that the store was not opened with (a programming error)."""

    code = "unknown_collection"
    reason = "unknown store collection"


@dataclass(frozen=True)
class StoredRecord:
    """One live document with its key, version (1 on insert, +1 per write) and expiry."""

    key: str
    doc: Document
    version: int
    expires_at: float | None  # Unix time in seconds; None: never expires


class DocumentStore(Protocol):
    """Atomic single-document operations on named collections.

    ``ttl`` is in seconds from now; ``None`` keeps the document until it is overwritten or
    deleted. Collections must be declared when the store is built (indexes are made for
    them at :meth:`start`).
    """

    @property
    def name(self) -> str: ...

    async def start(self) -> None:
        """Open the connection and create the schema or indexes; idempotent."""
        ...

    async def stop(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        ...

    async def get(self, collection: str, key: str) -> Document | None:
        """The live document under ``key``, or None."""
        ...

    async def get_record(self, collection: str, key: str) -> StoredRecord | None:
        """The live document with its version (what :meth:`compare_and_set` expects)."""
        ...

    async def put(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> int:
        """Create or overwrite unconditionally; returns the new version."""
        ...

    async def insert_if_absent(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> bool:
        """Create only when no live document has ``key`` (an expired one is replaced).

        Returns True for the one caller that created it: the building block of leases.
        """
        ...

    async def compare_and_set(
        self,
        collection: str,
        key: str,
        expected_version: int,
        doc: Mapping[str, Any],
        *,
        ttl: float | None = None,
    ) -> bool:
        """Overwrite only if the live document still has ``expected_version``.

        Of several writers holding the same version exactly one succeeds; the others get
        False and should re-read.
        """
        ...

    async def delete(self, collection: str, key: str) -> bool:
        """Remove the document; True if a live one was there."""
        ...

    async def compare_and_delete(self, collection: str, key: str, expected_version: int) -> bool:
        """Remove only if the live document still has ``expected_version`` (release a lease)."""
        ...

    async def find(self, collection: str, /, **equals: Scalar) -> list[StoredRecord]:
        """Live documents whose top-level fields equal the given values, ordered by key."""
        ...
