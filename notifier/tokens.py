"""Corp tokens kept in the notifier's process until shortly before they expire, so that a
send costs no ``rpc.tokens`` round trip; a token WeCom rejected is reported as ``stale`` when
a fresh one is asked for, exactly as :func:`shared.wecom.api.with_token` expects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from shared.tokens import TokensClient
from shared.wecom.api import TokenSource

# A cached token is not used in its last five minutes: token_service refreshes it before
# then, and a send must not leave with a token about to lapse on its way.
EXPIRY_MARGIN_S: Final = 300.0


SHORT_KEEP_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    usable_until: float


class CachedCorpTokens:
    """The corp token of each corp, from ``rpc.tokens`` once per token lifetime."""

    def __init__(
        self,
        tokens: TokensClient,
        *,
        margin_s: float = EXPIRY_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = tokens
        self._margin_s = margin_s
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        # One fetch at a time per corp: a burst of sends after a miss waits for one answer.
        self._fetching: dict[str, asyncio.Lock] = {}

    def source(self, corp_id: str) -> TokenSource:
        """A token source for ``with_token``: the cached token, or a fetched one (with the
        rejected token as ``stale`` when there is one)."""

        async def fetch(stale: str | None) -> str:
            lock = self._fetching.setdefault(corp_id, asyncio.Lock())
            async with lock:
                cached = self._cache.get(corp_id)
                fresh = cached is not None and cached.usable_until > self._clock()
                if cached is not None and fresh and cached.token != stale:
                    return cached.token
                reply = await self._tokens.get("corp", corp_id=corp_id, stale=stale)
                expires_at = reply.expires_at.timestamp()
                # A token served already inside the margin is still kept a few seconds:
                # asking for it on every send would only hammer token_service.
                usable_until = max(
                    expires_at - self._margin_s, min(expires_at, self._clock() + SHORT_KEEP_S)
                )
                self._cache[corp_id] = _Cached(reply.token, usable_until)
                return reply.token

        return fetch
