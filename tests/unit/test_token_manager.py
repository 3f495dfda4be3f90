"""TokenManager on a real SQLite store with a fake WeCom: caching, single flight across
replicas, stale reports, lease takeover, and error classification."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shared.contracts import TokenRequest
from shared.storage.crypto import SecretBox
from shared.storage.sqlite import SQLiteStore
from shared.wecom.api import WeComBusy, WeComCredentialError, WeComTokenRejected
from token_service.domain import (
    CachedToken,
    NotConfigured,
    NotInstalled,
    NotReady,
    SuiteTicket,
)
from token_service.manager import TokenManager
from token_service.metrics import TokenMetrics
from token_service.store import COLLECTIONS, StoredTokens

KEY = bytes(range(32))


class FakeWeCom:
    """Counts token calls; each call takes ``latency`` seconds and mints a new value."""

    def __init__(self, *, latency: float = 0.02, lifetime: float = 7200.0) -> None:
        self.calls: Counter[str] = Counter()
        self.latency = latency
        self.lifetime = lifetime
        self.failures: dict[str, list[Exception]] = {}
        self._serial = itertools.count(1)
        self.seen: list[tuple[str, str]] = []

    has_provider_credentials = False

    async def _mint(self, kind: str, credential: str = "") -> CachedToken:
        self.calls[kind] += 1
        self.seen.append((kind, credential))
        await asyncio.sleep(self.latency)
        pending = self.failures.get(kind)
        if pending:
            raise pending.pop(0)
        now = time.time()
        return CachedToken(f"{kind}-{next(self._serial)}", now + self.lifetime, now)

    async def suite_token(self, suite_ticket: str) -> CachedToken:
        return await self._mint("suite", suite_ticket)

    async def provider_token(self) -> CachedToken:
        return await self._mint("provider")

    async def corp_token(self, suite_token: str, corp_id: str, permanent_code: str) -> CachedToken:
        return await self._mint("corp", suite_token)

    async def jsapi_ticket(self, corp_token: str) -> CachedToken:
        return await self._mint("jsapi", corp_token)

    async def agent_ticket(self, corp_token: str) -> CachedToken:
        return await self._mint("agent_jsapi", corp_token)

    async def pre_auth_code(self, suite_token: str) -> CachedToken:
        return await self._mint("pre_auth_code", suite_token)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "wecom-suite.sqlite3", COLLECTIONS)
    await store.start()
    yield store
    await store.stop()


@pytest.fixture
def wecom() -> FakeWeCom:
    return FakeWeCom()


def repository_of(store: SQLiteStore) -> StoredTokens:
    return StoredTokens(store, SecretBox(KEY))


def make_manager(
    store: SQLiteStore, wecom: FakeWeCom, *, lease_s: float = 5.0, wait_s: float = 5.0
) -> TokenManager:
    return TokenManager(
        repository_of(store),
        wecom,
        TokenMetrics.create(CollectorRegistry()),
        margin_s=300,
        lease_s=lease_s,
        wait_s=wait_s,
    )


async def ready(store: SQLiteStore, *, corp: str = "wxcorp") -> None:
    repository = repository_of(store)
    await repository.save_ticket(SuiteTicket("ticket-1", time.time(), time.time()))
    await repository.apply_grant(
        "granted", corp_id=corp, occurred_at=time.time(), permanent_code="perm-1", agent_id=1
    )


CORP = TokenRequest(kind="corp", corp_id="wxcorp")


async def test_many_requests_on_three_replicas_make_one_call_per_token(
    store: SQLiteStore, wecom: FakeWeCom
) -> None:
    """300 concurrent gets over three replicas share one store: one suite and one corp call."""
    await ready(store)
    replicas = [make_manager(store, wecom) for _ in range(3)]
    answers = await asyncio.gather(*(replicas[i % 3].get(CORP) for i in range(300)))
    assert {answer.value for answer in answers} == {"corp-2"}
    assert wecom.calls == Counter({"suite": 1, "corp": 1})
    # Served again from memory, with no further call.
    assert (await replicas[1].get(CORP)).value == "corp-2"
    assert wecom.calls["corp"] == 1


async def test_a_restarted_replica_serves_the_stored_token(
    store: SQLiteStore, wecom: FakeWeCom
) -> None:
    """A new manager on the same store serves the stored token without calling WeCom again."""
    await ready(store)
    first = await make_manager(store, wecom).get(CORP)
    again = await make_manager(store, wecom).get(CORP)
    assert again == first
    assert wecom.calls == Counter({"suite": 1, "corp": 1})


async def test_a_stale_report_refreshes_once_and_an_old_one_not_at_all(
    store: SQLiteStore, wecom: FakeWeCom
) -> None:
    """Concurrent stale reports make one refresh; a later report of the old token makes none."""
    await ready(store)
    a, b = make_manager(store, wecom), make_manager(store, wecom)
    old = await a.get(CORP)
    stale = TokenRequest(kind="corp", corp_id="wxcorp", stale=old.value)
    fresh = await asyncio.gather(a.get(stale), b.get(stale), b.get(stale))
    assert {token.value for token in fresh} == {"corp-3"}
    assert wecom.calls["corp"] == 2
    # A later report of the same old token finds a newer current one: no refresh.
    assert (await a.get(stale)).value == "corp-3"
    assert wecom.calls["corp"] == 2


async def test_a_crashed_lease_holder_is_taken_over_after_the_lease_expires(
    store: SQLiteStore, wecom: FakeWeCom
) -> None:
    """A lease left by a dead replica is waited out, then taken over for one corp call."""
    await ready(store)
    await make_manager(store, wecom).get(TokenRequest(kind="suite"))
    # A replica took the corp lease and died before storing a token.
    dead = await repository_of(store).try_lease("corp:wxcorp", "crashed-replica", 0.6)
    assert dead is not None
    started = time.monotonic()
    token = await make_manager(store, wecom, lease_s=5.0).get(CORP)
    assert time.monotonic() - started >= 0.5
    assert token.value.startswith("corp-")
    assert wecom.calls["corp"] == 1


async def test_a_rejected_suite_token_is_refreshed_and_the_call_retried(
    store: SQLiteStore, wecom: FakeWeCom
) -> None:
    """A corp call refused for an expired suite token refreshes it and retries with the new one."""
    await ready(store)
    manager = make_manager(store, wecom)
    suite = await manager.get(TokenRequest(kind="suite"))
    wecom.failures["corp"] = [WeComTokenRejected(42009, "expired", "/get_corp_token")]
    token = await manager.get(CORP)
    assert token.value.startswith("corp-")
    assert wecom.calls == Counter({"suite": 2, "corp": 2})
    # The retry used the new suite token, not the rejected one.
    assert wecom.seen[-1][1] != suite.value


async def test_jsapi_tickets_ride_on_the_corp_token(store: SQLiteStore, wecom: FakeWeCom) -> None:
    """Twenty concurrent jsapi gets and one agent ticket cost one corp call and one of each."""
    await ready(store)
    manager = make_manager(store, wecom)
    jsapi = TokenRequest(kind="jsapi", corp_id="wxcorp")
    agent = TokenRequest(kind="agent_jsapi", corp_id="wxcorp", agent_id=1)
    tickets = await asyncio.gather(*(manager.get(jsapi) for _ in range(20)), manager.get(agent))
    assert len({t.value for t in tickets[:20]}) == 1
    assert wecom.calls == Counter({"suite": 1, "corp": 1, "jsapi": 1, "agent_jsapi": 1})


async def test_pre_auth_codes_are_fresh_every_time(store: SQLiteStore, wecom: FakeWeCom) -> None:
    """pre_auth_code is never cached: each request mints a new one."""
    await ready(store)
    manager = make_manager(store, wecom)
    request = TokenRequest(kind="pre_auth_code")
    first, second = await manager.get(request), await manager.get(request)
    assert first.value != second.value
    assert wecom.calls == Counter({"suite": 1, "pre_auth_code": 2})


async def test_system_busy_is_retried_within_the_wait(store: SQLiteStore, wecom: FakeWeCom) -> None:
    """WeCom's -1 system busy is retried: two busy answers, then the third call succeeds."""
    await ready(store)
    wecom.failures["suite"] = [WeComBusy(-1, "busy", "/get_suite_token")] * 2
    token = await make_manager(store, wecom).get(TokenRequest(kind="suite"))
    assert token.value.startswith("suite-")
    assert wecom.calls["suite"] == 3


@pytest.mark.parametrize(
    ("setup", "request_", "error"),
    [
        ("nothing", TokenRequest(kind="suite"), NotReady),
        ("ticket", CORP, NotInstalled),
        ("ticket", TokenRequest(kind="provider"), NotConfigured),
    ],
)
async def test_missing_prerequisites_give_clear_errors(
    store: SQLiteStore,
    wecom: FakeWeCom,
    setup: str,
    request_: TokenRequest,
    error: type[Exception],
) -> None:
    """No ticket, no install or no provider secret each raise their own error, calling nothing."""
    if setup == "ticket":
        await repository_of(store).save_ticket(SuiteTicket("t", time.time(), time.time()))
    with pytest.raises(error):
        await make_manager(store, wecom).get(request_)
    assert wecom.calls["corp"] == 0


async def test_a_revoked_corp_gets_no_token_and_loses_its_cache(
    store: SQLiteStore, wecom: FakeWeCom
) -> None:
    """After a revoke and forget_corp, a cached corp token is no longer served: NotInstalled."""
    await ready(store)
    manager = make_manager(store, wecom)
    await manager.get(CORP)
    await repository_of(store).apply_grant("revoked", corp_id="wxcorp", occurred_at=time.time())
    await manager.forget_corp("wxcorp")
    with pytest.raises(NotInstalled):
        await manager.get(CORP)


async def test_a_credential_error_reaches_the_caller_without_retries(
    store: SQLiteStore, wecom: FakeWeCom
) -> None:
    """A credential error (bad suite_ticket) is raised once, with its hint, and not retried."""
    await ready(store)
    wecom.failures["suite"] = [WeComCredentialError(40085, "invalid suite_ticket", "/x")]
    with pytest.raises(WeComCredentialError) as caught:
        await make_manager(store, wecom).get(TokenRequest(kind="suite"))
    assert "10 minutes" in caught.value.hint
    assert wecom.calls["suite"] == 1


async def test_tokens_are_sealed_in_the_store(store: SQLiteStore, wecom: FakeWeCom) -> None:
    """Neither the cached token nor the permanent code appears in clear in the stored rows."""
    await ready(store)
    token = await make_manager(store, wecom).get(CORP)
    raw = await store.get("tokens_cache", "corp:wxcorp")
    assert raw is not None
    assert token.value not in str(raw)
    grant = await store.get("tokens_grants", "wxcorp")
    assert grant is not None
    assert "perm-1" not in str(grant)
