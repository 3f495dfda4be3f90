"""Checks both backends apply identically, so a name that works on one works on the other."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from shared.storage.abc import Document, UnknownCollection

# Collection and field names stay plain identifiers: they become MongoDB collection names
# and dotted paths, and SQLite JSON paths, where dots, dollars and quotes mean something.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def check_collections(collections: Iterable[str]) -> frozenset[str]:
    names = frozenset(collections)
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"invalid collection name {name!r}: use letters, digits and _")
    return names


def require_collection(known: frozenset[str], collection: str) -> None:
    if collection not in known:
        raise UnknownCollection(f"collection {collection!r} was not declared to the store")


def check_field(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"invalid field name {name!r}: use letters, digits and _")
    return name


def to_json(doc: Mapping[str, Any]) -> str:
    """Canonical JSON; NaN and non-JSON types fail here on both backends alike."""
    return json.dumps(dict(doc), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def normalised(doc: Mapping[str, Any]) -> Document:
    """The document as it will read back (tuples become lists, keys are checked)."""
    result: Document = json.loads(to_json(doc))
    return result
