"""The production backend: MongoDB through PyMongo's async API (``AsyncMongoClient``).

Each logical collection is a MongoDB collection of ``{_id: key, doc, version, expires_at}``.
``_id`` is the unique key; a TTL index on ``expires_at`` (created at start) lets the server
purge expired documents, and every read filters them out too because the TTL monitor only
runs about once a minute.

Every operation is one single-document command -- ``find_one``, ``find_one_and_update``,
``update_one`` filtered on the version, an upsert that meets ``DuplicateKeyError`` when a
live document exists -- so none needs a transaction and each is atomic on a replica set or
a sharded cluster (sharded on ``_id``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ReturnDocument
from pymongo.errors import ConfigurationError, DuplicateKeyError, OperationFailure, PyMongoError

from shared.storage._common import (
    check_collections,
    check_field,
    normalised,
    require_collection,
)
from shared.storage.abc import (
    Document,
    Scalar,
    StoreAuthenticationFailed,
    StoredRecord,
    StoreError,
)

# MongoDB's error code for "Authentication failed" (a wrong user, password or authSource).
_AUTHENTICATION_FAILED = 18


class MongoClientLike(Protocol):
    """What the store uses of ``AsyncMongoClient`` (the test fake implements the same)."""

    def __getitem__(self, name: str) -> Any: ...

    async def close(self) -> None: ...


class MongoStore:
    """:class:`~shared.storage.abc.DocumentStore` on a MongoDB database.

    ``start()`` makes one attempt (the lifecycle retries it, see ``shared.component``);
    ``location`` (the URL, password masked) names the server in its errors.
    """

    name = "store"

    def __init__(
        self,
        client: MongoClientLike,
        database: str,
        collections: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        location: str = "MongoDB",
    ) -> None:
        self._client = client
        self._location = location
        self._database = client[database]
        self._collections = check_collections(collections)
        self._clock = clock

    async def start(self) -> None:
        try:
            await self._database.command("ping")
            for name in sorted(self._collections):
                await self._database[name].create_index(
                    "expires_at", name="expires_at_ttl", expireAfterSeconds=0
                )
        except PyMongoError as exc:
            # The class name only: the server's message may quote the user name.
            if isinstance(exc, ConfigurationError) or (
                isinstance(exc, OperationFailure) and exc.code == _AUTHENTICATION_FAILED
            ):
                raise StoreAuthenticationFailed(
                    f"{self._location} refused the credentials: {type(exc).__name__}"
                ) from None
            raise StoreError(f"{self._location} is unavailable: {type(exc).__name__}") from None

    async def stop(self) -> None:
        await self._client.close()

    def _collection(self, name: str) -> Any:
        require_collection(self._collections, name)
        return self._database[name]

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _expiry(self, ttl: float | None) -> datetime | None:
        return None if ttl is None else datetime.fromtimestamp(self._clock() + ttl, UTC)

    def _live(self) -> dict[str, Any]:
        # {"expires_at": None} matches both null and a missing field.
        return {"$or": [{"expires_at": None}, {"expires_at": {"$gt": self._now()}}]}

    async def get(self, collection: str, key: str) -> Document | None:
        record = await self.get_record(collection, key)
        return None if record is None else record.doc

    async def get_record(self, collection: str, key: str) -> StoredRecord | None:
        target = self._collection(collection)
        try:
            found = await target.find_one({"_id": key, **self._live()})
        except PyMongoError as exc:
            raise _unavailable(exc) from None
        return None if found is None else _record(found)

    async def put(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> int:
        target = self._collection(collection)
        update = {
            "$set": {"doc": normalised(doc), "expires_at": self._expiry(ttl)},
            "$inc": {"version": 1},
        }
        try:
            after = await target.find_one_and_update(
                {"_id": key},
                update,
                upsert=True,
                return_document=ReturnDocument.AFTER,
                projection={"version": True},
            )
        except PyMongoError as exc:
            raise _unavailable(exc) from None
        return int(after["version"])

    async def insert_if_absent(
        self, collection: str, key: str, doc: Mapping[str, Any], *, ttl: float | None = None
    ) -> bool:
        target = self._collection(collection)
        fields = {"doc": normalised(doc), "version": 1, "expires_at": self._expiry(ttl)}
        try:
            # Matches only an expired document (replaced); otherwise the upsert inserts, and
            # a live document with this _id makes that insert fail with DuplicateKeyError.
            await target.update_one(
                {"_id": key, "expires_at": {"$lte": self._now()}}, {"$set": fields}, upsert=True
            )
        except DuplicateKeyError:
            return False
        except PyMongoError as exc:
            raise _unavailable(exc) from None
        return True

    async def compare_and_set(
        self,
        collection: str,
        key: str,
        expected_version: int,
        doc: Mapping[str, Any],
        *,
        ttl: float | None = None,
    ) -> bool:
        target = self._collection(collection)
        update = {
            "$set": {"doc": normalised(doc), "expires_at": self._expiry(ttl)},
            "$inc": {"version": 1},
        }
        try:
            result = await target.update_one(
                {"_id": key, "version": expected_version, **self._live()}, update
            )
        except PyMongoError as exc:
            raise _unavailable(exc) from None
        return bool(result.matched_count == 1)

    async def delete(self, collection: str, key: str) -> bool:
        target = self._collection(collection)
        try:
            removed = await target.find_one_and_delete({"_id": key})
        except PyMongoError as exc:
            raise _unavailable(exc) from None
        # The document goes whether live or expired; only a live one counts as deleted.
        return removed is not None and _is_live(removed, self._now())

    async def compare_and_delete(self, collection: str, key: str, expected_version: int) -> bool:
        target = self._collection(collection)
        try:
            result = await target.delete_one(
                {"_id": key, "version": expected_version, **self._live()}
            )
        except PyMongoError as exc:
            raise _unavailable(exc) from None
        return bool(result.deleted_count == 1)

    async def find(self, collection: str, /, **equals: Scalar) -> list[StoredRecord]:
        target = self._collection(collection)
        query: dict[str, Any] = {f"doc.{check_field(f)}": v for f, v in equals.items()}
        query.update(self._live())
        try:
            found = await target.find(query).sort("_id", 1).to_list(None)
        except PyMongoError as exc:
            raise _unavailable(exc) from None
        return [_record(item) for item in found]


def _unavailable(exc: PyMongoError) -> StoreError:
    # The class name only: server messages can quote the filter, and with it a key or value.
    return StoreError(f"MongoDB failed: {type(exc).__name__}")


def _aware(moment: datetime) -> datetime:
    # A client without tz_aware=True returns naive UTC datetimes.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_live(raw: Mapping[str, Any], now: datetime) -> bool:
    expires_at = raw.get("expires_at")
    return expires_at is None or _aware(expires_at) > now


def _record(raw: Mapping[str, Any]) -> StoredRecord:
    expires_at = raw.get("expires_at")
    return StoredRecord(
        key=str(raw["_id"]),
        doc=dict(raw["doc"]),
        version=int(raw["version"]),
        expires_at=None if expires_at is None else _aware(expires_at).timestamp(),
    )
