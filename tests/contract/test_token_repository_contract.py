"""token_service's repository, run on every store backend: newest ticket, tokens sealed at
rest, leases that expire and are released by version, grants applied in event order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.storage import SecretBox
from tests.support.store_backends import BACKENDS, Backend, FakeClock
from token_service.domain import CachedToken, CorpGrant, SuiteTicket
from token_service.store import COLLECTIONS, StoredTokens

KEY = bytes(range(32))


@pytest.fixture(params=BACKENDS)
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[list[StoredTokens], Backend]]:
    """Two repositories on one backend: two replicas sharing the store."""
    backend: Backend = request.param(tmp_path, COLLECTIONS)
    stores = [backend.open(clock), backend.open(clock)]
    for store in stores:
        await store.start()
    yield [StoredTokens(store, SecretBox(KEY), clock=clock) for store in stores], backend
    for store in stores:
        await store.stop()
    await backend.dispose()


async def test_only_a_newer_ticket_replaces_the_stored_one(
    replicas: tuple[list[StoredTokens], Backend], clock: FakeClock
) -> None:
    """A ticket with an older WeCom timestamp never replaces the stored newer one."""
    (a, b), _backend = replicas
    assert await a.get_ticket() is None
    newer = SuiteTicket("ticket-2", timestamp=clock.now, received_at=clock.now)
    older = SuiteTicket("ticket-1", timestamp=clock.now - 600, received_at=clock.now + 1)
    assert await a.save_ticket(newer)
    assert not await b.save_ticket(older)
    assert await b.get_ticket() == newer


async def test_tokens_round_trip_sealed_and_expire(
    replicas: tuple[list[StoredTokens], Backend], clock: FakeClock
) -> None:
    """A token one replica stores is read by another, sealed at rest, gone past expiry+grace."""
    (a, b), backend = replicas
    token = CachedToken("corp-token-secret-value", clock.now + 100, clock.now)
    await a.put_token("corp:wx1", token)
    assert await b.get_token("corp:wx1") == token
    assert b"corp-token-secret-value" not in await backend.raw_bytes()
    clock.advance(100 + 61)  # past expiry and the grace period
    assert await b.get_token("corp:wx1") is None


async def test_one_lease_at_a_time_until_it_expires(
    replicas: tuple[list[StoredTokens], Backend], clock: FakeClock
) -> None:
    """One replica holds a lease until it lapses; a late release cannot free the next holder's."""
    (a, b), _backend = replicas
    lease = await a.try_lease("suite", "replica-a", 10)
    assert lease is not None
    assert await b.try_lease("suite", "replica-b", 10) is None
    clock.advance(11)  # replica-a crashed: its lease lapses
    taken = await b.try_lease("suite", "replica-b", 10)
    assert taken is not None
    # The old holder's late release must not free replica-b's lease.
    await a.release(lease)
    assert await a.try_lease("suite", "replica-a", 10) is None
    await b.release(taken)
    assert await a.try_lease("suite", "replica-a", 10) is not None


async def test_grants_apply_in_event_order_and_are_sealed(
    replicas: tuple[list[StoredTokens], Backend], clock: FakeClock
) -> None:
    """Grants are sealed at rest and applied by event time: a late grant never undoes a revoke."""
    (a, b), backend = replicas
    t = clock.now
    granted = await a.apply_grant(
        "granted", corp_id="wx1", occurred_at=t, permanent_code="perm-secret", agent_id=3
    )
    assert granted == CorpGrant("wx1", "perm-secret", 3, t)
    assert b"perm-secret" not in await backend.raw_bytes()
    assert await b.apply_grant("revoked", corp_id="wx1", occurred_at=t + 10) is not None
    # The same grant redelivered after the revocation changes nothing.
    late = await a.apply_grant(
        "granted", corp_id="wx1", occurred_at=t, permanent_code="perm-secret", agent_id=3
    )
    assert late is None
    assert await a.get_grant("wx1") == CorpGrant("wx1", None, None, t + 10, revoked=True)
