"""Opening MongoDB at start: an absent server or refused credentials are retried like the bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError
from structlog.testing import capture_logs

from shared.backoff import Backoff
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY
from shared.component import BusService
from shared.storage.abc import StoreAuthenticationFailed, StoreError
from shared.storage.factory import create_store
from shared.storage.mongo import MongoStore
from tests.support.fake_mongo import FakeDatabase, FakeMongoClient, FakeMongoServer

PASSWORD = "mongo-test-pw-123"  # test data, not a real credential
LOCATION = "MongoDB at mongodb://app:***@db:27017/"


class RefusingClient(FakeMongoClient):
    """The fake server, refusing ``ping`` with each of ``errors`` in turn first."""

    def __init__(self, *errors: Exception) -> None:
        super().__init__(FakeMongoServer())
        self.errors = list(errors)
        self.pings = 0

    def __getitem__(self, name: str) -> FakeDatabase:
        client = self

        class Database(FakeDatabase):
            async def command(self, command: str) -> Any:
                client.pings += 1
                if client.errors:
                    raise client.errors.pop(0)
                return await super().command(command)

        return Database(self, name)


class Service(BusService):
    name = "test_service"
    store_backoff = Backoff(initial_s=0.001, cap_s=0.002)


def _service(store: MongoStore) -> Service:
    bus = InProcessBus(BASE_TOPOLOGY)
    return Service(bus, BusComponent(bus), store, None)


async def test_unreachable_mongodb_is_retried_until_it_answers() -> None:
    """Two timeouts, then the server answers: warnings, no traceback, the store opens."""
    client = RefusingClient(ServerSelectionTimeoutError("no"), ServerSelectionTimeoutError("no"))
    service = _service(MongoStore(client, "db", ["tokens"], location=LOCATION))
    with capture_logs() as logs:
        await service.start()
    await service.stop()
    assert client.pings == 3
    failures = [e for e in logs if e["event"] == "store_connect_failed"]
    assert [e["log_level"] for e in failures] == ["warning", "warning"]
    assert [e["attempt"] for e in failures] == [1, 2]
    assert failures[0]["error"] == f"{LOCATION} is unavailable: ServerSelectionTimeoutError"


async def test_refused_credentials_are_an_error_line_and_retried() -> None:
    """Authentication failed (code 18): an error-level line naming the masked URL, retried."""
    refused = OperationFailure("Authentication failed.", code=18)
    client = RefusingClient(refused)
    service = _service(MongoStore(client, "db", ["tokens"], location=LOCATION))
    with capture_logs() as logs:
        await service.start()
    await service.stop()
    assert client.pings == 2
    [line] = [e for e in logs if e["event"] == "store_authentication_failed"]
    assert line["log_level"] == "error"
    assert line["error"] == f"{LOCATION} refused the credentials: OperationFailure"
    assert "MONGO_URL" in line["operator_action"]


async def test_one_attempt_raises_the_kind_of_failure() -> None:
    """The store itself makes one attempt and says which failure it met."""
    store = MongoStore(RefusingClient(OperationFailure("auth", code=18)), "db", ["t"])
    with pytest.raises(StoreAuthenticationFailed):
        await store.start()
    store = MongoStore(RefusingClient(OperationFailure("other", code=13)), "db", ["t"])
    with pytest.raises(StoreError) as info:
        await store.start()
    assert not isinstance(info.value, StoreAuthenticationFailed)


async def test_the_store_from_settings_names_the_url_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MONGO_URL's store names the server in its errors, password masked.

    The fake stands in for the client: PyMongo leaks the socket of a refused connection,
    and a real closed port would make that warning fail whichever test runs at the next GC.
    """
    monkeypatch.setattr(
        "shared.storage.factory.AsyncMongoClient",
        lambda *args, **kwargs: RefusingClient(ServerSelectionTimeoutError("no")),
    )
    store = create_store(
        ["tokens"],
        mongo_url=SecretStr(f"mongodb://app:{PASSWORD}@127.0.0.1:1/"),
        mongo_db="db",
        data_dir=tmp_path,
    )
    with pytest.raises(StoreError) as info:
        await store.start()
    await store.stop()
    assert info.value.message == (
        "MongoDB at mongodb://app:***@127.0.0.1:1/ is unavailable: ServerSelectionTimeoutError"
    )
    assert PASSWORD not in info.value.message
