"""Serving tokens: memory first, then the store, and one refresh per token at a time across
every replica.

A refresh is single-flight twice over. Within a process, callers of a token being refreshed
await the one refresh already running. Across processes, the refresher holds a lease in the
store (an expiring document): the other replicas poll the store until the new token appears,
and take the lease over if its holder crashed. Nobody calls WeCom for a token another caller
is already fetching, which is WeCom's rule (a fresh token may invalidate the previous one)
and what "one token call per token per expiry" means.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Final

import structlog

from shared.contracts import TokenRequest
from shared.errors import ServiceError
from shared.wecom.api import (
    WeComCredentialError,
    WeComIpNotAllowed,
    WeComTokenRejected,
    retry_transient,
)
from token_service.domain import (
    CachedToken,
    NotConfigured,
    NotInstalled,
    NotReady,
    RefreshInProgress,
    TokenKey,
    corp_keys,
    key_for,
    servable,
)
from token_service.fetcher import Fetcher
from token_service.metrics import TokenMetrics
from token_service.store import TokenRepository

log = structlog.get_logger(__name__)

SUITE: Final = TokenKey("suite")
_POLL_INITIAL_S: Final = 0.02
_POLL_MAX_S: Final = 0.25


class TokenManager:
    """The token logic of token_service, independent of the bus."""

    def __init__(
        self,
        repository: TokenRepository,
        fetcher: Fetcher,
        metrics: TokenMetrics,
        *,
        margin_s: float,
        lease_s: float,
        wait_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._fetcher = fetcher
        self._metrics = metrics
        self._margin_s = margin_s
        self._lease_s = lease_s
        self._wait_s = wait_s
        self._clock = clock
        self._memory: dict[str, CachedToken] = {}
        self._inflight: dict[str, asyncio.Future[CachedToken]] = {}
        # Identifies this replica's leases (never reused, so a restarted process is new).
        self.holder = f"{uuid.uuid4().hex[:12]}"

    async def get(self, request: TokenRequest) -> CachedToken:
        """The token ``request`` asks for.

        Raises:
            NotReady, NotInstalled, NotConfigured, RefreshInProgress, or a WeCom error.
        """
        if request.kind == "pre_auth_code":
            # A fresh one per install attempt (§8.2): never cached, never shared.
            return await self._with_token(SUITE, self._pre_auth_code)
        return await self.token(key_for(request), stale=request.stale)

    async def token(self, key: TokenKey, *, stale: str | None = None) -> CachedToken:
        """The current token under ``key``; refreshed only when missing, near expiry, or
        ``stale`` (a token a caller saw WeCom reject) is still the current one."""
        now = self._clock()
        cached = self._memory.get(key.name)
        if cached is not None and servable(cached, now=now, margin=self._margin_s, reject=stale):
            self._metrics.count_served(key.kind, "memory")
            return cached
        # Memory is empty, old or stale: another replica may have a newer token in the store.
        stored = await self._stored(key, stale)
        if stored is not None:
            self._metrics.count_served(key.kind, "store")
            return stored
        dependency = _dependency_of(key)
        if dependency is not None:
            # Fetch what this token is minted with before taking its lease, so the lease
            # covers one WeCom call, not a chain of them.
            await self.token(dependency)
        running = self._inflight.get(key.name)
        if running is not None:
            token = await asyncio.shield(running)
            self._metrics.count_served(key.kind, "waited")
            return token
        future: asyncio.Future[CachedToken] = asyncio.get_running_loop().create_future()
        self._inflight[key.name] = future
        try:
            token = await self._refresh_once(key, stale)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(token)
            self._metrics.count_served(key.kind, "refresh")
            return token
        finally:
            del self._inflight[key.name]

    async def forget_corp(self, corp_id: str) -> None:
        """Drop every cached token of a corp (its grant changed or was revoked)."""
        for key in corp_keys(corp_id):
            self._memory.pop(key.name, None)
            await self._repository.delete_token(key.name)

    async def _refresh_once(self, key: TokenKey, reject: str | None) -> CachedToken:
        """Refresh ``key`` under the store lease, or wait for the replica holding it."""
        deadline = time.monotonic() + self._wait_s
        poll = _POLL_INITIAL_S
        waited = False
        while True:
            lease = await self._repository.try_lease(key.name, self.holder, self._lease_s)
            if lease is not None:
                try:
                    # The lease holder before us may have just stored a new token.
                    stored = await self._stored(key, reject)
                    if stored is not None:
                        return stored
                    token = await self._fetch(key, deadline)
                    await self._repository.put_token(key.name, token)
                    self._memory[key.name] = token
                    return token
                finally:
                    await self._repository.release(lease)
            if not waited:
                waited = True
                self._metrics.lease_waits.labels(key.kind).inc()
            if time.monotonic() + poll > deadline:
                raise RefreshInProgress
            await asyncio.sleep(poll)
            poll = min(poll * 2, _POLL_MAX_S)
            stored = await self._stored(key, reject)
            if stored is not None:
                return stored

    async def _stored(self, key: TokenKey, reject: str | None) -> CachedToken | None:
        """The store's token under ``key`` if it may be served (then also kept in memory)."""
        stored = await self._repository.get_token(key.name)
        if stored is None or not servable(
            stored, now=self._clock(), margin=self._margin_s, reject=reject
        ):
            return None
        self._memory[key.name] = stored
        return stored

    async def _fetch(self, key: TokenKey, deadline: float) -> CachedToken:
        """Call WeCom for ``key``'s token (retrying blind-retryable failures until
        ``deadline``), with whatever token or credential the call itself needs."""
        if key.kind == "suite":
            ticket = await self._repository.get_ticket()
            if ticket is None:
                raise NotReady
            value = ticket.value
            return await self._guarded(
                "suite", lambda: self._fetcher.suite_token(value), deadline=deadline
            )
        if key.kind == "provider":
            if not self._fetcher.has_provider_credentials:
                raise NotConfigured(
                    "kind 'provider' needs WECOM_PROVIDER_CORPID and WECOM_PROVIDER_SECRET"
                )
            return await self._guarded("provider", self._fetcher.provider_token, deadline=deadline)
        corp_id = key.corp_id
        if corp_id is None:
            raise ValueError(f"kind {key.kind!r} needs a corp id")
        if key.kind == "corp":
            grant = await self._repository.get_grant(corp_id)
            if grant is None or grant.revoked or grant.permanent_code is None:
                raise NotInstalled(f"the app is not installed in corp {corp_id}")
            code = grant.permanent_code
            return await self._with_token(
                SUITE,
                lambda suite: self._guarded(
                    "corp",
                    lambda: self._fetcher.corp_token(suite, corp_id, code),
                    deadline=deadline,
                    corp_id=corp_id,
                ),
            )
        fetch = self._fetcher.jsapi_ticket if key.kind == "jsapi" else self._fetcher.agent_ticket
        return await self._with_token(
            TokenKey("corp", corp_id),
            lambda corp: self._guarded(
                key.kind, lambda: fetch(corp), deadline=deadline, corp_id=corp_id
            ),
        )

    async def _with_token(
        self, key: TokenKey, call: Callable[[str], Awaitable[CachedToken]]
    ) -> CachedToken:
        """Run ``call`` with the token under ``key``; if WeCom rejects that token, refresh it
        (reporting it stale, so only the current one is replaced) and retry once."""
        token = await self.token(key)
        try:
            return await call(token.value)
        except WeComTokenRejected as exc:
            log.info(
                "token_rejected_by_wecom", kind=key.kind, corp_id=key.corp_id, errcode=exc.errcode
            )
        fresh = await self.token(key, stale=token.value)
        return await call(fresh.value)

    async def _pre_auth_code(self, suite_token: str) -> CachedToken:
        deadline = time.monotonic() + self._wait_s
        return await self._guarded(
            "pre_auth_code", lambda: self._fetcher.pre_auth_code(suite_token), deadline=deadline
        )

    async def _guarded(
        self,
        kind: str,
        call: Callable[[], Awaitable[CachedToken]],
        *,
        deadline: float,
        corp_id: str | None = None,
    ) -> CachedToken:
        """One WeCom token call with transient retries, counted, and with the operator told
        what to fix when the failure is theirs to fix."""
        try:
            token = await retry_transient(call, deadline=deadline)
        except ServiceError as exc:
            self._report_failure(kind, exc)
            raise
        self._metrics.refreshes.labels(kind, "ok").inc()
        log.info(
            "token_refreshed",
            kind=kind,
            corp_id=corp_id,  # which corp's token: an operator tracing one customer needs it
            expires_in_s=round(token.expires_at - token.fetched_at),
        )
        return token

    def _report_failure(self, kind: str, exc: ServiceError) -> None:
        if isinstance(exc, WeComCredentialError):
            self._metrics.refreshes.labels(kind, f"errcode_{exc.errcode}").inc()
            log.error(
                "wecom_credential_rejected",
                kind=kind,
                errcode=exc.errcode,
                operator_action=exc.hint,
            )
        elif isinstance(exc, WeComIpNotAllowed):
            self._metrics.refreshes.labels(kind, "errcode_60020").inc()
            log.error(
                "wecom_ip_not_allowed",
                kind=kind,
                egress_ip=exc.ip,
                operator_action="add this server's egress IP to the app's IP allow-list "
                "(developer centre: Tools > Development configuration > IP whitelist)",
            )
        else:
            self._metrics.refreshes.labels(kind, exc.code).inc()


def _dependency_of(key: TokenKey) -> TokenKey | None:
    """The token ``key``'s own token is minted with (None for the suite and provider)."""
    if key.kind == "corp":
        return SUITE
    if key.kind in ("jsapi", "agent_jsapi"):
        return TokenKey("corp", key.corp_id)
    return None
