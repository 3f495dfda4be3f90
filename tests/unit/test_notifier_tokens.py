"""The notifier's local corp-token cache: one rpc.tokens call per token lifetime, a rejected
token reported as stale, and a token near its expiry fetched again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from notifier.tokens import EXPIRY_MARGIN_S, CachedCorpTokens
from shared.bus.abc import Message
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY, RPC_TOKENS_QUEUE, RPC_TOPOLOGY
from shared.tokens import TokensClient
from tests.support.store_backends import FakeClock


class FakeTokenService:
    """Answers rpc.tokens with a new token whenever the caller reports the current as stale
    (or it has expired), and counts the calls."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[dict[str, object]] = []
        self.serial = 1
        self.expires_at = clock() + 7200

    async def answer(self, message: Message) -> bytes:
        request = json.loads(message.body)
        self.requests.append(request)
        if request.get("stale") == f"token-{self.serial}" or self.clock() >= self.expires_at:
            self.serial += 1
            self.expires_at = self.clock() + 7200
        expires = datetime.fromtimestamp(self.expires_at, UTC).isoformat()
        return json.dumps({"token": f"token-{self.serial}", "expires_at": expires}).encode()


@pytest.fixture
def clock() -> FakeClock:
    """Unix time that moves only when the test says so."""
    return FakeClock()


@pytest.fixture
async def served(clock: FakeClock) -> AsyncIterator[tuple[CachedCorpTokens, FakeTokenService]]:
    bus = InProcessBus(BASE_TOPOLOGY.merged(RPC_TOPOLOGY))
    await bus.start()
    service = FakeTokenService(clock)
    consumer = await bus.serve(RPC_TOKENS_QUEUE, service.answer)
    yield CachedCorpTokens(TokensClient(bus, timeout_s=5), clock=clock), service
    await consumer.cancel(grace=1.0)
    await bus.close()


async def test_a_token_is_fetched_once_per_lifetime(
    served: tuple[CachedCorpTokens, FakeTokenService], clock: FakeClock
) -> None:
    """Many sends, concurrent or not, share one fetch; near expiry it is fetched again."""
    cache, service = served
    source = cache.source("wwcorp")
    tokens = await asyncio.gather(*(source(None) for _ in range(20)))
    assert set(tokens) == {"token-1"}
    assert await source(None) == "token-1"
    assert len(service.requests) == 1
    assert service.requests[0] == {"kind": "corp", "corp_id": "wwcorp"}
    clock.advance(7200 - EXPIRY_MARGIN_S + 1)
    # Inside the margin it asks again (token_service still serves the same token) ...
    assert await source(None) == "token-1"
    assert len(service.requests) == 2
    # ... and keeps that answer a few seconds rather than asking on every send.
    assert await source(None) == "token-1"
    assert len(service.requests) == 2
    clock.advance(EXPIRY_MARGIN_S)
    assert await source(None) == "token-2"


async def test_a_rejected_token_is_reported_stale_and_replaced(
    served: tuple[CachedCorpTokens, FakeTokenService],
) -> None:
    """with_token's retry asks with stale=<the rejected token> and gets, and keeps, a new one."""
    cache, service = served
    source = cache.source("wwcorp")
    assert await source(None) == "token-1"
    assert await source("token-1") == "token-2"
    assert service.requests[-1]["stale"] == "token-1"
    assert await source(None) == "token-2"
    assert len(service.requests) == 2
