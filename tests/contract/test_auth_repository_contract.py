"""auth_service's repository on every store backend: atomic admissions under contention,
exchange records keyed by hash, installations sealed and ordered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from auth_service.domain import (
    Admission,
    CodeRecord,
    InstallationRecord,
    Ledger,
    Limits,
    admit,
)
from auth_service.store import COLLECTIONS, AuthRepository
from shared.storage import SecretBox
from tests.support.store_backends import BACKENDS, Backend, FakeClock

KEY = bytes(range(32))


@pytest.fixture(params=BACKENDS)
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[list[AuthRepository], Backend]]:
    """Three repositories on one backend: three replicas racing each other."""
    backend: Backend = request.param(tmp_path, COLLECTIONS)
    stores = [backend.open(clock) for _ in range(3)]
    for store in stores:
        await store.start()
    yield [AuthRepository(store, SecretBox(KEY)) for store in stores], backend
    for store in stores:
        await store.stop()
    await backend.dispose()


async def test_fifty_racing_installs_admit_exactly_the_free_slots(
    replicas: tuple[list[AuthRepository], Backend],
) -> None:
    """Fifty installs racing on three replicas' ledger admit exactly the three free slots."""
    repositories, _ = replicas
    limits = Limits(corps=5)
    for corp in ("pre0", "pre1"):

        def preinstall(ledger: Ledger, corp: str = corp) -> Admission:
            return admit(ledger, limits, corp_id=corp, members=["u"], test=False)

        await repositories[0].update_ledger(preinstall)

    async def install(index: int) -> bool:
        _, admission = await repositories[index % 3].update_ledger(
            lambda ledger: admit(ledger, limits, corp_id=f"c{index}", members=["u"], test=False)
        )
        return admission.admitted

    results = await asyncio.gather(*(install(index) for index in range(50)))
    assert results.count(True) == 3
    assert (await repositories[1].ledger()).usage("lifetime").corps == 5


async def test_an_auth_code_is_claimed_once_and_never_stored_in_clear(
    replicas: tuple[list[AuthRepository], Backend],
) -> None:
    """The first claim of a code wins, later ones see it; code and exchange are sealed at rest."""
    (a, b, _), backend = replicas
    code = "auth-code-secret-123"
    assert await a.claim_code(code, "event-1", now=5.0) is None
    existing = await b.claim_code(code, "event-2", now=6.0)
    assert existing is not None
    assert existing.to_doc() == {"status": "claimed", "event_id": "event-1", "claimed_at": 5.0}
    sealed = a.seal_exchange(code, {"permanent_code": "perm-secret-456"})
    await a.save_code(code, CodeRecord("exchanged", "event-1", exchange=sealed))
    record = await b.code_record(code)
    assert record is not None
    assert record.exchange is not None
    assert b.open_exchange(code, record.exchange) == {"permanent_code": "perm-secret-456"}
    raw = await backend.raw_bytes()
    assert b"auth-code-secret-123" not in raw
    assert b"perm-secret-456" not in raw


async def test_installations_are_sealed_and_updated_atomically(
    replicas: tuple[list[AuthRepository], Backend],
) -> None:
    """Twelve concurrent member updates over three replicas all land; the code stays sealed."""
    (a, b, c), backend = replicas

    def first(current: InstallationRecord | None) -> InstallationRecord | None:
        assert current is None
        return InstallationRecord(
            "wx1", "active", changed_at=10, installed_at=10, updated_at=10,
            members=("alice",), permanent_code="perm-code-789",
        )  # fmt: skip

    await a.update_installation("wx1", first)
    assert b"perm-code-789" not in await backend.raw_bytes()

    async def add(repository: AuthRepository, user: str) -> None:
        def change(current: InstallationRecord | None) -> InstallationRecord | None:
            assert current is not None
            members = tuple(sorted({*current.members, user}))
            return InstallationRecord(**{**current.__dict__, "members": members})

        await repository.update_installation("wx1", change)

    await asyncio.gather(*(add([a, b, c][i % 3], f"user{i}") for i in range(12)))
    found = await c.installation("wx1")
    assert found is not None
    assert len(found.members) == 13
    assert found.permanent_code == "perm-code-789"
    assert [record.corp_id for record in await b.installations()] == ["wx1"]
