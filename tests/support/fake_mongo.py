"""An in-process stand-in for exactly the part of ``AsyncMongoClient`` that the store uses.

Why not mongomock-motor: it needs Motor (end of life since May 2026) and wraps a
synchronous mock whose ``close()`` is not awaitable, while the store is written against
PyMongo's async API. This fake is small enough to check line by line against MongoDB's
documented semantics for what it models:

- ``_id`` is unique; inserting a second one raises PyMongo's own ``DuplicateKeyError``,
  as does an upsert whose filter matches nothing when the ``_id`` is taken.
- Filters: equality on (dotted) fields, where ``None`` matches null or missing and booleans
  never equal numbers; ``$gt``, ``$gte``, ``$lt``, ``$lte`` within one type; ``$or``.
- Updates: ``$set``, ``$inc``, ``$setOnInsert``; an upsert starts from the filter's
  equality fields.
- Datetimes are stored at millisecond precision, as BSON does.
- A TTL index is recorded but, like a server between two TTL monitor passes, purges
  nothing: the store must filter expired documents itself.

Each operation yields to the event loop once (the network round trip) and then runs
without awaiting, so it is atomic, as a single-document operation is on a server. Several
clients made from one :class:`FakeMongoServer` see the same data, like replicas of a service.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

Raw = dict[str, Any]


@dataclass
class FakeMongoServer:
    """The shared state: database name → collection name → documents by ``_id``."""

    data: dict[str, dict[str, dict[Any, Raw]]] = field(default_factory=dict)
    indexes: dict[tuple[str, str], dict[str, Raw]] = field(default_factory=dict)

    def client(self) -> FakeMongoClient:
        return FakeMongoClient(self)


class FakeMongoClient:
    def __init__(self, server: FakeMongoServer) -> None:
        self.server = server
        self.closed = False

    def __getitem__(self, name: str) -> FakeDatabase:
        return FakeDatabase(self, name)

    async def close(self) -> None:
        self.closed = True


class FakeDatabase:
    def __init__(self, client: FakeMongoClient, name: str) -> None:
        self._client = client
        self.name = name

    def __getitem__(self, name: str) -> FakeCollection:
        return FakeCollection(self._client, self.name, name)

    async def command(self, name: str) -> Raw:
        await _round_trip(self._client)
        if name != "ping":
            raise OperationFailure(f"the fake supports only ping, not {name}")
        return {"ok": 1.0}


@dataclass(frozen=True)
class UpdateResult:
    matched_count: int
    modified_count: int
    upserted_id: Any


@dataclass(frozen=True)
class DeleteResult:
    deleted_count: int


class FakeCursor:
    def __init__(self, client: FakeMongoClient, documents: list[Raw]) -> None:
        self._client = client
        self._documents = documents

    def sort(self, key: str, direction: int = 1) -> FakeCursor:
        self._documents.sort(key=lambda doc: doc[key], reverse=direction < 0)
        return self

    async def to_list(self, length: int | None = None) -> list[Raw]:
        await _round_trip(self._client)
        return self._documents if length is None else self._documents[:length]


class FakeCollection:
    def __init__(self, client: FakeMongoClient, database: str, name: str) -> None:
        self._client = client
        self._key = (database, name)
        self._docs = client.server.data.setdefault(database, {}).setdefault(name, {})

    async def create_index(
        self, keys: str, *, name: str | None = None, unique: bool = False, **options: Any
    ) -> str:
        await _round_trip(self._client)
        index_name = name or f"{keys}_1"
        spec = {"key": keys, "unique": unique, **options}
        existing = self._client.server.indexes.setdefault(self._key, {})
        if index_name in existing and existing[index_name] != spec:
            raise OperationFailure(f"index {index_name} exists with other options")
        existing[index_name] = spec
        return index_name

    async def find_one(self, query: Mapping[str, Any]) -> Raw | None:
        await _round_trip(self._client)
        found = self._first(query)
        return None if found is None else copy.deepcopy(found)

    def find(self, query: Mapping[str, Any]) -> FakeCursor:
        matching = [copy.deepcopy(doc) for doc in self._docs.values() if _matches(doc, query)]
        return FakeCursor(self._client, matching)

    async def insert_one(self, document: Mapping[str, Any]) -> Any:
        await _round_trip(self._client)
        self._insert(_stored(document))
        return document["_id"]

    async def update_one(
        self, query: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False
    ) -> UpdateResult:
        await _round_trip(self._client)
        found = self._first(query)
        if found is not None:
            self._replace(found, _apply(found, update, inserting=False))
            return UpdateResult(1, 1, None)
        if not upsert:
            return UpdateResult(0, 0, None)
        created = _apply(_equality_fields(query), update, inserting=True)
        self._insert(created)
        return UpdateResult(0, 0, created["_id"])

    async def find_one_and_update(
        self,
        query: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
        projection: Mapping[str, Any] | None = None,
    ) -> Raw | None:
        await _round_trip(self._client)
        found = self._first(query)
        if found is not None:
            after = _apply(found, update, inserting=False)
            self._replace(found, after)
            result: Raw | None = after if return_document else found
        elif upsert:
            after = _apply(_equality_fields(query), update, inserting=True)
            self._insert(after)
            result = after if return_document else None
        else:
            result = None
        return None if result is None else _project(result, projection)

    async def find_one_and_delete(self, query: Mapping[str, Any]) -> Raw | None:
        await _round_trip(self._client)
        found = self._first(query)
        if found is not None:
            del self._docs[found["_id"]]
        return found

    async def delete_one(self, query: Mapping[str, Any]) -> DeleteResult:
        await _round_trip(self._client)
        found = self._first(query)
        if found is None:
            return DeleteResult(0)
        del self._docs[found["_id"]]
        return DeleteResult(1)

    def _first(self, query: Mapping[str, Any]) -> Raw | None:
        return next((doc for doc in self._docs.values() if _matches(doc, query)), None)

    def _insert(self, document: Raw) -> None:
        if "_id" not in document:
            raise OperationFailure("the fake needs an explicit _id")
        if document["_id"] in self._docs:
            raise DuplicateKeyError(f"E11000 duplicate key error collection: {self._key[1]}")
        self._check_unique(document, ignore=None)
        self._docs[document["_id"]] = document

    def _replace(self, old: Raw, new: Raw) -> None:
        self._check_unique(new, ignore=old["_id"])
        self._docs[old["_id"]] = new

    def _check_unique(self, document: Raw, ignore: Any) -> None:
        for spec in self._client.server.indexes.get(self._key, {}).values():
            if not spec["unique"]:
                continue
            value = _lookup(document, spec["key"])
            for other in self._docs.values():
                if other["_id"] != ignore and _lookup(other, spec["key"]) == value:
                    raise DuplicateKeyError(f"E11000 duplicate key error index: {spec['key']}")


async def _round_trip(client: FakeMongoClient) -> None:
    if client.closed:
        raise OperationFailure("the client is closed")
    await asyncio.sleep(0)


_MISSING = object()


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _same_type(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return type(a) is type(b)


def _equals(value: Any, expected: Any) -> bool:
    if expected is None:
        return value is _MISSING or value is None
    return value is not _MISSING and _same_type(value, expected) and value == expected


_COMPARISONS = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _matches_condition(value: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(k.startswith("$") for k in condition):
        for operator, operand in condition.items():
            if operator not in _COMPARISONS:
                raise OperationFailure(f"the fake does not support {operator}")
            # Type bracketing: a comparison never matches a value of another type (or null).
            if value is _MISSING or value is None or not _same_type(value, operand):
                return False
            if not _COMPARISONS[operator](value, _bson(operand)):
                return False
        return True
    return _equals(value, _bson(condition))


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for key, condition in query.items():
        if key == "$or":
            if not any(_matches(document, branch) for branch in condition):
                return False
        elif key.startswith("$"):
            raise OperationFailure(f"the fake does not support {key}")
        elif not _matches_condition(_lookup(document, key), condition):
            return False
    return True


def _equality_fields(query: Mapping[str, Any]) -> Raw:
    return {
        key: _bson(value)
        for key, value in query.items()
        if not key.startswith("$") and "." not in key and not _is_operator(value)
    }


def _is_operator(value: Any) -> bool:
    return isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)


def _apply(document: Mapping[str, Any], update: Mapping[str, Any], *, inserting: bool) -> Raw:
    result = copy.deepcopy(dict(document))
    for operator, fields in update.items():
        if operator == "$setOnInsert" and not inserting:
            continue
        for name, value in fields.items():
            if "." in name:
                raise OperationFailure("the fake updates top-level fields only")
            if operator in ("$set", "$setOnInsert"):
                result[name] = _bson(copy.deepcopy(value))
            elif operator == "$inc":
                result[name] = result.get(name, 0) + value
            else:
                raise OperationFailure(f"the fake does not support {operator}")
    return result


def _stored(document: Mapping[str, Any]) -> Raw:
    return {key: _bson(copy.deepcopy(value)) for key, value in document.items()}


def _bson(value: Any) -> Any:
    # BSON dates have millisecond precision.
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def _project(document: Raw, projection: Mapping[str, Any] | None) -> Raw:
    if projection is None:
        return copy.deepcopy(document)
    wanted = {name for name, keep in projection.items() if keep} | {"_id"}
    return {key: copy.deepcopy(value) for key, value in document.items() if key in wanted}
