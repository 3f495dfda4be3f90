"""token_service's repository: suite_ticket, cached tokens, refresh leases and corp grants on
the shared document store (SQLite or MongoDB), every secret sealed with DATA_KEY.

Each method is one or a few single-document steps (design: no transactions), so it behaves
the same on both backends and scales on a MongoDB cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from shared.storage.abc import DocumentStore, StoredRecord
from shared.storage.cas import Decision, Keep, Write, compare_and_update
from shared.storage.crypto import SecretBox
from token_service.domain import (
    CachedToken,
    CorpGrant,
    GrantChange,
    SuiteTicket,
    apply_grant_event,
    is_newer_ticket,
)

TICKETS: Final = "tokens_suite_ticket"
TOKENS: Final = "tokens_cache"
LEASES: Final = "tokens_leases"
GRANTS: Final = "tokens_grants"
COLLECTIONS: Final = (TICKETS, TOKENS, LEASES, GRANTS)

_TICKET_KEY: Final = "current"
# Cached tokens stay in the store a little past expiry so a restarted replica can still read
# when one was fetched; an expired one is never served (domain.servable checks).
_TOKEN_GRACE_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class Lease:
    """A refresh lease held by this replica (see :meth:`StoredTokens.release`)."""

    name: str
    holder: str
    version: int


class TokenRepository(Protocol):
    async def get_ticket(self) -> SuiteTicket | None: ...
    async def save_ticket(self, ticket: SuiteTicket) -> bool: ...
    async def get_token(self, name: str) -> CachedToken | None: ...
    async def put_token(self, name: str, token: CachedToken) -> None: ...
    async def delete_token(self, name: str) -> None: ...
    async def cached_tokens(self) -> dict[str, tuple[float, float]]: ...
    async def try_lease(self, name: str, holder: str, lease_s: float) -> Lease | None: ...
    async def release(self, lease: Lease) -> None: ...
    async def get_grant(self, corp_id: str) -> CorpGrant | None: ...
    async def apply_grant(
        self,
        change: GrantChange,
        *,
        corp_id: str,
        occurred_at: float,
        permanent_code: str | None = None,
        agent_id: int | None = None,
    ) -> CorpGrant | None: ...


class StoredTokens:
    """:class:`TokenRepository` on a :class:`DocumentStore`."""

    def __init__(
        self, store: DocumentStore, box: SecretBox, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._box = box
        self._clock = clock

    # --- suite_ticket ---------------------------------------------------------------------

    async def get_ticket(self) -> SuiteTicket | None:
        record = await self._store.get_record(TICKETS, _TICKET_KEY)
        return None if record is None else self._ticket_of(record.doc)

    async def save_ticket(self, ticket: SuiteTicket) -> bool:
        """Store ``ticket`` if it is newer than the stored one; True if it was stored."""
        doc = {
            "value": self._box.seal(ticket.value, context="tokens/suite_ticket"),
            "timestamp": ticket.timestamp,
            "received_at": ticket.received_at,
        }

        def decide(record: StoredRecord | None) -> Decision[bool]:
            if record is None or is_newer_ticket(ticket, self._ticket_of(record.doc)):
                return Write(doc, True)
            return Keep(False)

        return await compare_and_update(self._store, TICKETS, _TICKET_KEY, decide)

    def _ticket_of(self, doc: dict[str, Any]) -> SuiteTicket:
        return SuiteTicket(
            value=self._box.open(doc["value"], context="tokens/suite_ticket"),
            timestamp=float(doc["timestamp"]),
            received_at=float(doc["received_at"]),
        )

    # --- cached tokens --------------------------------------------------------------------

    async def get_token(self, name: str) -> CachedToken | None:
        doc = await self._store.get(TOKENS, name)
        if doc is None:
            return None
        return CachedToken(
            value=self._box.open(doc["value"], context=f"tokens/{name}"),
            expires_at=float(doc["expires_at"]),
            fetched_at=float(doc["fetched_at"]),
        )

    async def put_token(self, name: str, token: CachedToken) -> None:
        doc = {
            "value": self._box.seal(token.value, context=f"tokens/{name}"),
            "expires_at": token.expires_at,
            "fetched_at": token.fetched_at,
        }
        ttl = max(1.0, token.expires_at - self._clock() + _TOKEN_GRACE_S)
        await self._store.put(TOKENS, name, doc, ttl=ttl)

    async def delete_token(self, name: str) -> None:
        await self._store.delete(TOKENS, name)

    async def cached_tokens(self) -> dict[str, tuple[float, float]]:
        """Name → (fetched_at, expires_at) of every cached token; values are never opened."""
        return {
            record.key: (float(record.doc["fetched_at"]), float(record.doc["expires_at"]))
            for record in await self._store.find(TOKENS)
        }

    # --- leases ---------------------------------------------------------------------------

    async def try_lease(self, name: str, holder: str, lease_s: float) -> Lease | None:
        """Take the refresh lease of ``name`` unless a live one exists. The store's expiry
        frees the lease of a holder that crashed."""
        doc = {"holder": holder, "acquired_at": self._clock()}
        if not await self._store.insert_if_absent(LEASES, name, doc, ttl=lease_s):
            return None
        record = await self._store.get_record(LEASES, name)
        if record is None or record.doc.get("holder") != holder:
            return None  # expired already and taken by another: not ours any more
        return Lease(name, holder, record.version)

    async def release(self, lease: Lease) -> None:
        """Release ``lease`` if this replica still holds it.

        A version alone cannot tell: a lease re-created after an expiry starts at version 1
        again. So the holder is checked first, then the delete is conditional on the version;
        only a takeover in the milliseconds between the two could be released early, and the
        cost of that is one extra refresh, not a wrong token.
        """
        record = await self._store.get_record(LEASES, lease.name)
        if record is None or record.doc.get("holder") != lease.holder:
            return
        await self._store.compare_and_delete(LEASES, lease.name, record.version)

    # --- corp grants ----------------------------------------------------------------------

    async def get_grant(self, corp_id: str) -> CorpGrant | None:
        record = await self._store.get_record(GRANTS, corp_id)
        return None if record is None else self._grant_of(corp_id, record.doc)

    async def apply_grant(
        self,
        change: GrantChange,
        *,
        corp_id: str,
        occurred_at: float,
        permanent_code: str | None = None,
        agent_id: int | None = None,
    ) -> CorpGrant | None:
        """Apply an ``auth.*`` event (see :func:`apply_grant_event`); the new grant, or None
        when the event changed nothing (older than the stored state, or a repeat)."""

        def decide(record: StoredRecord | None) -> Decision[CorpGrant | None]:
            current = None if record is None else self._grant_of(corp_id, record.doc)
            updated = apply_grant_event(
                current,
                change,
                corp_id=corp_id,
                occurred_at=occurred_at,
                permanent_code=permanent_code,
                agent_id=agent_id,
            )
            if updated is None or updated == current:
                return Keep(None)
            return Write(self._grant_doc(updated), updated)

        return await compare_and_update(self._store, GRANTS, corp_id, decide)

    def _grant_doc(self, grant: CorpGrant) -> dict[str, Any]:
        code = grant.permanent_code
        return {
            "permanent_code": None
            if code is None
            else self._box.seal(code, context=f"tokens/grant/{grant.corp_id}"),
            "agent_id": grant.agent_id,
            "changed_at": grant.changed_at,
            "revoked": grant.revoked,
        }

    def _grant_of(self, corp_id: str, doc: dict[str, Any]) -> CorpGrant:
        sealed = doc.get("permanent_code")
        return CorpGrant(
            corp_id=corp_id,
            permanent_code=None
            if sealed is None
            else self._box.open(sealed, context=f"tokens/grant/{corp_id}"),
            agent_id=doc.get("agent_id"),
            changed_at=float(doc["changed_at"]),
            revoked=bool(doc.get("revoked", False)),
        )
