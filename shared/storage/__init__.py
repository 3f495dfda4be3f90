"""Durable state for the stateful services: the document store and encryption at rest.

A service declares its own repository ``Protocol`` and builds it on :class:`DocumentStore`
(SQLite embedded, MongoDB in production, chosen by :func:`create_store`); secrets inside
documents are sealed with :class:`SecretBox` before they reach either backend; a change
to one document is a pure decision run by :func:`compare_and_update`.
"""

from shared.storage.abc import DocumentStore, StoredRecord, StoreError, UnknownCollection
from shared.storage.cas import (
    ABSENT,
    CAS_BACKOFF,
    ContentionError,
    Decision,
    Keep,
    Write,
    compare_and_update,
)
from shared.storage.crypto import SealedValueError, SecretBox, load_data_key
from shared.storage.factory import create_store

__all__ = [
    "ABSENT",
    "CAS_BACKOFF",
    "ContentionError",
    "Decision",
    "DocumentStore",
    "Keep",
    "SealedValueError",
    "SecretBox",
    "StoreError",
    "StoredRecord",
    "UnknownCollection",
    "Write",
    "compare_and_update",
    "create_store",
    "load_data_key",
]
