"""The notifier's repository on the shared document store: one record per request id (the
idempotency memory), the media cache, and the send-limit counters shared by every replica.

Each method is one or a few single-document steps (compare-and-set loops, no transactions),
so it behaves the same on SQLite and MongoDB and across any number of replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Protocol

from notifier.domain import (
    RequestRecord,
    Window,
    admit,
    counter_ttl,
    give_back,
    is_claimable,
    take_over,
)
from shared.notify import NotifyResult
from shared.storage.abc import DocumentStore, StoreError

REQUESTS: Final = "notify_requests"
MEDIA: Final = "notify_media"
LIMITS: Final = "notify_limits"
COLLECTIONS: Final = (REQUESTS, MEDIA, LIMITS)

# WeCom keeps a temporary media_id for 3 days (protocol doc §11.6).
MEDIA_TTL_S: Final = 3 * 86_400.0
# A compare-and-set loop gives up after this many lost races (each loser re-reads).
_CAS_ATTEMPTS: Final = 50


class ContentionError(StoreError):
    """A compare-and-set loop lost too many races; retrying the message later helps."""

    code = "store_contention"
    reason = "too many concurrent writers on one document"


@dataclass(frozen=True, slots=True)
class Claim:
    """A request this delivery owns: its record and the version last written."""

    record: RequestRecord
    version: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """Person-times counted on one counter document at ``at`` (to give back if unsent)."""

    key: str
    windows: tuple[Window, ...]
    weight: int
    at: float


class NotifierRepository(Protocol):
    async def get_request(self, request_id: str) -> RequestRecord | None: ...
    async def claim(
        self, request_id: str, owner: str, claim_s: float
    ) -> Claim | RequestRecord | None: ...
    async def update(self, claim: Claim, record: RequestRecord) -> Claim | None: ...
    async def finish(self, claim: Claim, result: NotifyResult) -> RequestRecord: ...
    async def get_media(self, corp_id: str, key: str) -> str | None: ...
    async def put_media(self, corp_id: str, key: str, media_id: str, margin_s: float) -> None: ...
    async def reserve(
        self, key: str, windows: tuple[Window, ...], weight: int, margin_s: float
    ) -> Reservation | float | None: ...
    async def release(self, reservation: Reservation) -> None: ...


class StoredNotifications:
    """:class:`NotifierRepository` on a :class:`DocumentStore`."""

    def __init__(
        self,
        store: DocumentStore,
        *,
        record_ttl_s: float = 7 * 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._record_ttl_s = record_ttl_s
        self._clock = clock

    # --- request records ------------------------------------------------------------------

    async def get_request(self, request_id: str) -> RequestRecord | None:
        doc = await self._store.get(REQUESTS, request_id)
        return None if doc is None else RequestRecord.from_doc(request_id, doc)

    async def claim(
        self, request_id: str, owner: str, claim_s: float
    ) -> Claim | RequestRecord | None:
        """Own ``request_id`` for ``claim_s`` seconds.

        Returns the :class:`Claim`; the finished record when the request is done already; or
        None while another delivery holds a live claim.
        """
        for _ in range(_CAS_ATTEMPTS):
            now = self._clock()
            found = await self._store.get_record(REQUESTS, request_id)
            if found is None:
                record = RequestRecord(
                    request_id, "claimed", owner=owner, claimed_until=now + claim_s
                )
                if await self._store.insert_if_absent(
                    REQUESTS, request_id, record.to_doc(), ttl=self._record_ttl_s
                ):
                    return Claim(record, 1)
                continue
            current = RequestRecord.from_doc(request_id, found.doc)
            if current.is_done:
                return current
            if not is_claimable(current, now):
                return None
            record = take_over(current, owner, now, claim_s)
            if await self._store.compare_and_set(
                REQUESTS, request_id, found.version, record.to_doc(), ttl=self._record_ttl_s
            ):
                return Claim(record, found.version + 1)
        raise ContentionError(f"request {request_id} is claimed by too many deliveries at once")

    async def update(self, claim: Claim, record: RequestRecord) -> Claim | None:
        """Write ``record`` if the claim still holds (None: another delivery took it over)."""
        stored = await self._store.compare_and_set(
            REQUESTS, record.request_id, claim.version, record.to_doc(), ttl=self._record_ttl_s
        )
        return Claim(record, claim.version + 1) if stored else None

    async def finish(self, claim: Claim, result: NotifyResult) -> RequestRecord:
        """Store the final result. If another delivery took the claim over meanwhile, the
        first final result stored wins and is returned (both describe one request)."""
        done = replace(
            claim.record, state="done", in_flight=False, claimed_until=0.0, result=result
        )
        version = claim.version
        for _ in range(_CAS_ATTEMPTS):
            if await self._store.compare_and_set(
                REQUESTS, done.request_id, version, done.to_doc(), ttl=self._record_ttl_s
            ):
                return done
            found = await self._store.get_record(REQUESTS, done.request_id)
            if found is None:
                await self._store.put(REQUESTS, done.request_id, done.to_doc())
                return done
            current = RequestRecord.from_doc(done.request_id, found.doc)
            if current.is_done:
                return current
            version = found.version
        raise ContentionError(f"request {done.request_id} result lost too many races")

    # --- media cache ----------------------------------------------------------------------

    async def get_media(self, corp_id: str, key: str) -> str | None:
        doc = await self._store.get(MEDIA, f"{corp_id}:{key}")
        return None if doc is None else str(doc["media_id"])

    async def put_media(self, corp_id: str, key: str, media_id: str, margin_s: float) -> None:
        """Remember an uploaded media_id until ``margin_s`` before WeCom forgets it."""
        ttl = max(1.0, MEDIA_TTL_S - margin_s)
        doc = {"media_id": media_id, "uploaded_at": self._clock()}
        await self._store.put(MEDIA, f"{corp_id}:{key}", doc, ttl=ttl)

    # --- send-limit counters --------------------------------------------------------------

    async def reserve(
        self, key: str, windows: tuple[Window, ...], weight: int, margin_s: float
    ) -> Reservation | float | None:
        """Count ``weight`` person-times on counter ``key`` if every window has room.

        Returns the :class:`Reservation`; else the seconds until there is room; None when
        ``weight`` exceeds a limit outright.
        """
        ttl = counter_ttl(windows, margin_s)
        for _ in range(_CAS_ATTEMPTS):
            now = self._clock()
            found = await self._store.get_record(LIMITS, key)
            counts: Mapping[str, Mapping[str, int]] = {} if found is None else found.doc
            admission = admit(counts, windows, weight, now, margin_s=margin_s)
            if not admission.admitted:
                return admission.wait_s
            if found is None:
                stored = await self._store.insert_if_absent(LIMITS, key, admission.counts, ttl=ttl)
            else:
                stored = await self._store.compare_and_set(
                    LIMITS, key, found.version, admission.counts, ttl=ttl
                )
            if stored:
                return Reservation(key, windows, weight, now)
        raise ContentionError(f"send-limit counter {key} lost too many races")

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose message was never sent (best effort)."""
        ttl = counter_ttl(reservation.windows, 0.0)
        for _ in range(_CAS_ATTEMPTS):
            found = await self._store.get_record(LIMITS, reservation.key)
            if found is None:
                return
            counts = give_back(found.doc, reservation.windows, reservation.weight, reservation.at)
            if await self._store.compare_and_set(
                LIMITS, reservation.key, found.version, counts, ttl=ttl
            ):
                return
