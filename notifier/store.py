"""The notifier's repository on the shared document store: one record per request id (the
idempotency memory), the media cache, and the send-limit counters shared by every replica.

Each method is one or a few single-document steps (compare-and-set, no transactions),
so it behaves the same on SQLite and MongoDB and across any number of replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Protocol

from notifier.domain import (
    MAX_DUPLICATE_INTERVAL_S,
    DuplicatePlan,
    EarlierSend,
    RequestRecord,
    Window,
    admit,
    counter_ttl,
    give_back,
    is_claimable,
    next_slot,
    slot_ttl,
    take_over,
    without_slot,
)
from shared.notify import NotifyResult
from shared.storage.abc import DocumentStore, StoredRecord
from shared.storage.cas import ABSENT, ContentionError, Decision, Keep, Write, compare_and_update

REQUESTS: Final = "notify_requests"
MEDIA: Final = "notify_media"
LIMITS: Final = "notify_limits"
CONTENT: Final = "notify_content"
SCHEDULE: Final = "notify_schedule"
RESULTS: Final = "notify_results"
COLLECTIONS: Final = (REQUESTS, MEDIA, LIMITS, CONTENT, SCHEDULE, RESULTS)
# The console's list of final results (status, errcode, reason; never content) is the last
# day's: what an operator looks at, and a bound on what a read of it scans.
RESULTS_TTL_S: Final = 86_400.0
# A scheduled request is kept at least this long past its due time (a notifier down for
# that long loses nothing: it is still in the schedule when one comes back).
SCHEDULE_TTL_S: Final = 7 * 86_400.0

# How long a send of some content is remembered: WeCom's longest duplicate-check interval
# (4 h) and a minute to spare.
CONTENT_TTL_S: Final = MAX_DUPLICATE_INTERVAL_S + 60.0

# WeCom keeps a temporary media_id for 3 days (protocol doc §11.6).
MEDIA_TTL_S: Final = 3 * 86_400.0


@dataclass(frozen=True, slots=True)
class Claim:
    """A request this delivery owns: its record and the version last written."""

    record: RequestRecord
    version: int


@dataclass(frozen=True, slots=True)
class Done:
    """A request already finished: its final result, to republish."""

    result: NotifyResult


@dataclass(frozen=True, slots=True)
class Reservation:
    """Person-times counted on one counter document at ``at`` (to give back if unsent)."""

    key: str
    windows: tuple[Window, ...]
    weight: int
    at: float


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A request waiting for a send-limit window, to be published again at ``due_at``."""

    request_id: str
    body: bytes
    due_at: float
    version: int


class NotifierRepository(Protocol):
    async def get_request(self, request_id: str) -> RequestRecord | None: ...
    async def claim(self, request_id: str, owner: str, claim_s: float) -> Claim | Done | None: ...
    async def update(self, claim: Claim, record: RequestRecord) -> Claim | None: ...
    async def finish(
        self, claim: Claim, result: NotifyResult, *, corp_id: str | None = None
    ) -> Done: ...
    async def results(
        self, *, since: float, corp_id: str | None = None, status: str | None = None
    ) -> list[dict[str, object]]: ...
    async def get_media(self, corp_id: str, key: str) -> str | None: ...
    async def put_media(self, corp_id: str, key: str, media_id: str, margin_s: float) -> None: ...
    async def reserve(
        self, key: str, windows: tuple[Window, ...], weight: int, margin_s: float
    ) -> Reservation | float | None: ...
    async def release(self, reservation: Reservation) -> None: ...
    async def schedule(
        self, key: str, windows: tuple[Window, ...], margin_s: float, at: float
    ) -> float: ...
    async def unschedule(self, key: str, windows: tuple[Window, ...], slot: float) -> None: ...
    async def restamp(
        self, key: str, windows: tuple[Window, ...], slot: float, sent_at: float
    ) -> None: ...
    async def put_scheduled(self, request_id: str, body: bytes, due_at: float) -> None: ...
    async def scheduled(self) -> list[Scheduled]: ...
    async def drop_scheduled(self, entry: Scheduled) -> bool: ...
    async def recent_sends(self, key: str) -> dict[str, list[EarlierSend]]: ...
    async def plan_send(
        self,
        key: str,
        recipients: list[str],
        request_id: str,
        plan_of: Callable[[Mapping[str, list[EarlierSend]], float], DuplicatePlan],
    ) -> DuplicatePlan: ...


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

    async def claim(self, request_id: str, owner: str, claim_s: float) -> Claim | Done | None:
        """Own ``request_id`` for ``claim_s`` seconds.

        Returns the :class:`Claim`; :class:`Done` when the request is finished already; or
        None while another delivery holds a live claim.
        """

        def decide(found: StoredRecord | None) -> Decision[Claim | Done | None]:
            now = self._clock()
            if found is None:
                record = RequestRecord(
                    request_id, "claimed", owner=owner, claimed_until=now + claim_s
                )
                return Write(record.to_doc(), Claim(record, 1))
            current = RequestRecord.from_doc(request_id, found.doc)
            if current.state == "done" and current.result is not None:
                return Keep(Done(current.result))
            if not is_claimable(current, now):
                return Keep(None)
            record = take_over(current, owner, now, claim_s)
            return Write(record.to_doc(), Claim(record, found.version + 1))

        # Most deliveries are a request's first: create its record without reading.
        return await compare_and_update(
            self._store, REQUESTS, request_id, decide, ttl=self._record_ttl_s, known=ABSENT
        )

    async def update(self, claim: Claim, record: RequestRecord) -> Claim | None:
        """Write ``record`` if the claim still holds (None: another delivery took it over)."""
        stored = await self._store.compare_and_set(
            REQUESTS, record.request_id, claim.version, record.to_doc(), ttl=self._record_ttl_s
        )
        return Claim(record, claim.version + 1) if stored else None

    async def finish(
        self, claim: Claim, result: NotifyResult, *, corp_id: str | None = None
    ) -> Done:
        """Store the final result. If another delivery took the claim over meanwhile, the
        first final result stored wins and is returned (both describe one request). Its
        summary row (for the console) is kept for :data:`RESULTS_TTL_S`."""
        done = replace(
            claim.record, state="done", in_flight=False, claimed_until=0.0, result=result
        )

        def decide(found: StoredRecord | None) -> Decision[Done]:
            if found is not None:
                current = RequestRecord.from_doc(done.request_id, found.doc)
                if current.state == "done" and current.result is not None:
                    return Keep(Done(current.result))
            return Write(done.to_doc(), Done(result))

        # The claim's own version is most likely still current: try it before reading.
        mine = StoredRecord(done.request_id, claim.record.to_doc(), claim.version, None)
        finishing = compare_and_update(
            self._store, REQUESTS, done.request_id, decide, ttl=self._record_ttl_s, known=mine
        )
        # The console's summary row is written alongside (one group commit, not two in a
        # row), from this delivery's result; in the rare case that another delivery's result
        # was stored first, the row is written again from that one.
        summary = self._put_summary(done.request_id, result, corp_id)
        finished, _ = await asyncio.gather(finishing, summary)
        if finished.result is not result:
            await self._put_summary(done.request_id, finished.result, corp_id)
        return finished

    async def _put_summary(
        self, request_id: str, result: NotifyResult, corp_id: str | None
    ) -> None:
        row = {
            "corp_id": corp_id,
            "status": result.status,
            "errcode": result.errcode,
            "errmsg": result.errmsg,
            "attempts": result.attempts,
            "finished_at": self._clock(),
        }
        # Keyed by request id: a second delivery finishing the same request rewrites one row.
        await self._store.put(RESULTS, request_id, row, ttl=RESULTS_TTL_S)

    async def results(
        self, *, since: float, corp_id: str | None = None, status: str | None = None
    ) -> list[dict[str, object]]:
        """The summary rows of results finished since ``since`` (of one corp, of one status),
        newest first, each with its ``request_id``."""
        equals: dict[str, str] = {}
        if corp_id is not None:
            equals["corp_id"] = corp_id
        if status is not None:
            equals["status"] = status
        rows = [
            {**record.doc, "request_id": record.key}
            for record in await self._store.find(RESULTS, **equals)
            if float(record.doc.get("finished_at") or 0.0) >= since
        ]
        rows.sort(key=lambda row: float(str(row["finished_at"])), reverse=True)
        return rows

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

        def decide(found: StoredRecord | None) -> Decision[Reservation | float | None]:
            now = self._clock()
            counts: Mapping[str, Mapping[str, int]] = {} if found is None else found.doc
            admission = admit(counts, windows, weight, now, margin_s=margin_s)
            if not admission.admitted:
                return Keep(admission.wait_s)
            return Write(admission.counts, Reservation(key, windows, weight, now))

        return await compare_and_update(self._store, LIMITS, key, decide, ttl=ttl)

    async def release(self, reservation: Reservation) -> None:
        """Give back a reservation whose message was never sent (best effort)."""
        ttl = counter_ttl(reservation.windows, 0.0)

        def decide(found: StoredRecord | None) -> Decision[None]:
            if found is None:
                return Keep(None)
            counts = give_back(found.doc, reservation.windows, reservation.weight, reservation.at)
            return Write(counts, None)

        # Best effort, as before: a counter too contended to give back to keeps these
        # person-times until its windows pass, which only delays later sends.
        with contextlib.suppress(ContentionError):
            await compare_and_update(self._store, LIMITS, reservation.key, decide, ttl=ttl)

    # --- per-member send slots -------------------------------------------------------------

    async def schedule(
        self, key: str, windows: tuple[Window, ...], margin_s: float, at: float
    ) -> float:
        """Reserve the next send slot of member counter ``key`` no sooner than ``at`` (the
        caller's "now", the same for every member of one send; see :func:`next_slot`)."""
        ttl = slot_ttl(windows, margin_s)

        def decide(found: StoredRecord | None) -> Decision[float]:
            times = [] if found is None else _times_of(found.doc)
            slot, updated = next_slot(times, windows, now=at, margin_s=margin_s)
            return Write({"times": updated}, slot)

        return await compare_and_update(self._store, LIMITS, key, decide, ttl=ttl)

    async def unschedule(self, key: str, windows: tuple[Window, ...], slot: float) -> None:
        """Give back a slot whose send never went out (best effort)."""
        ttl = slot_ttl(windows, 0.0)

        def decide(found: StoredRecord | None) -> Decision[None]:
            if found is None:
                return Keep(None)
            return Write({"times": without_slot(_times_of(found.doc), slot)}, None)

        with contextlib.suppress(ContentionError):
            await compare_and_update(self._store, LIMITS, key, decide, ttl=ttl)

    async def restamp(
        self, key: str, windows: tuple[Window, ...], slot: float, sent_at: float
    ) -> None:
        """Count a booked send at the moment it actually went out (best effort)."""
        ttl = slot_ttl(windows, 0.0)

        def decide(found: StoredRecord | None) -> Decision[None]:
            times = [] if found is None else without_slot(_times_of(found.doc), slot)
            return Write({"times": sorted([*times, sent_at])}, None)

        with contextlib.suppress(ContentionError):
            await compare_and_update(self._store, LIMITS, key, decide, ttl=ttl)

    # --- requests waiting for a window ------------------------------------------------------

    async def put_scheduled(self, request_id: str, body: bytes, due_at: float) -> None:
        """Keep ``body`` until ``due_at``, when a notifier publishes it again."""
        ttl = max(1.0, due_at - self._clock()) + SCHEDULE_TTL_S
        doc = {"body": body.decode("utf-8", "surrogateescape"), "due_at": due_at}
        await self._store.put(SCHEDULE, request_id, doc, ttl=ttl)

    async def scheduled(self) -> list[Scheduled]:
        """Every waiting request, soonest first."""
        found = await self._store.find(SCHEDULE)
        entries = [
            Scheduled(
                record.key,
                str(record.doc["body"]).encode("utf-8", "surrogateescape"),
                float(record.doc["due_at"]),
                record.version,
            )
            for record in found
        ]
        return sorted(entries, key=lambda entry: entry.due_at)

    async def drop_scheduled(self, entry: Scheduled) -> bool:
        """Remove ``entry`` if no other notifier has (True: this one publishes it)."""
        return await self._store.compare_and_delete(SCHEDULE, entry.request_id, entry.version)

    # --- sends of the same content (the duplicate check) ----------------------------------

    async def recent_sends(self, key: str) -> dict[str, list[EarlierSend]]:
        """Recipient key → the sends of content ``key`` of the last 4 hours."""
        doc = await self._store.get(CONTENT, key)
        return {} if doc is None else _sends_of(doc, self._clock())

    async def plan_send(
        self,
        key: str,
        recipients: list[str],
        request_id: str,
        plan_of: Callable[[Mapping[str, list[EarlierSend]], float], DuplicatePlan],
    ) -> DuplicatePlan:
        """Plan the duplicate check of a send of content ``key`` and remember the send, in one
        compare-and-set: two replicas sending the same content at once see each other."""

        def decide(found: StoredRecord | None) -> Decision[DuplicatePlan]:
            now = self._clock()
            sends = {} if found is None else _sends_of(found.doc, now)
            plan = plan_of(sends, now)
            send = EarlierSend(request_id, now, plan.check, plan.interval)
            for recipient in recipients:
                # New lists: the plan may keep what it was shown.
                sends[recipient] = [*sends.get(recipient, []), send]
            doc = {
                recipient: [
                    [item.request_id, item.sent_at, item.checked, item.interval] for item in items
                ]
                for recipient, items in sends.items()
            }
            return Write(doc, plan)

        # Content is rarely sent twice (the recipients are part of it): create without reading.
        return await compare_and_update(
            self._store, CONTENT, key, decide, ttl=CONTENT_TTL_S, known=ABSENT
        )


def _times_of(doc: Mapping[str, object]) -> list[float]:
    times = doc.get("times")
    return [float(t) for t in times] if isinstance(times, list) else []


def _sends_of(doc: Mapping[str, object], now: float) -> dict[str, list[EarlierSend]]:
    """The stored sends still within the longest interval WeCom allows."""
    sends: dict[str, list[EarlierSend]] = {}
    for recipient, items in doc.items():
        if not isinstance(items, list):
            continue
        for request_id, sent_at, checked, interval in items:
            if now - float(sent_at) < MAX_DUPLICATE_INTERVAL_S:
                sends.setdefault(recipient, []).append(
                    EarlierSend(str(request_id), float(sent_at), bool(checked), int(interval))
                )
    return sends
