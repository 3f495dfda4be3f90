"""Chooses the store backend: MongoDB when ``MONGO_URL`` is set, else the SQLite file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import SecretStr
from pymongo import AsyncMongoClient

from shared.settings import StoreSettings, masked_url
from shared.storage.abc import DocumentStore
from shared.storage.mongo import MongoStore
from shared.storage.sqlite import DB_FILE_NAME, SQLiteStore


def create_store(
    collections: Iterable[str],
    *,
    mongo_url: SecretStr | None,
    mongo_db: str,
    data_dir: Path,
    server_selection_timeout_s: float = 10.0,
) -> DocumentStore:
    """MongoDB at ``mongo_url`` (database ``mongo_db``) if set, else ``DATA_DIR``'s SQLite file.

    Nothing connects until the store's ``start()``; PyMongo connects lazily anyway.
    """
    names = tuple(collections)
    if mongo_url is None:
        return SQLiteStore(data_dir / DB_FILE_NAME, names)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo_url.get_secret_value(),
        tz_aware=True,
        serverSelectionTimeoutMS=int(server_selection_timeout_s * 1000),
        appname="wecom-suite",
    )
    return MongoStore(client, mongo_db, names, location=f"MongoDB at {masked_url(mongo_url)}")


def create_service_store(settings: StoreSettings, collections: Iterable[str]) -> DocumentStore:
    """:func:`create_store` from a service's ``MONGO_URL``/``MONGO_DB``/``DATA_DIR`` settings."""
    return create_store(
        collections,
        mongo_url=settings.mongo_url,
        mongo_db=settings.mongo_db,
        data_dir=settings.data_dir,
    )
