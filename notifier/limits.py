"""Send-limit scheduling: each message/send gets the moment it may go out under the
per-member windows (30/minute, 1000/hour) — in the order the sends were booked — and is
counted on the per-app daily budget. Nothing is dropped and no limit uses the retry queues."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from notifier.domain import Failure, NotifierPolicy, app_weight
from notifier.metrics import NotifierMetrics
from notifier.outcomes import Failed, Postpone
from notifier.store import NotifierRepository, Reservation
from shared.notify import NotifyRequest

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Booking:
    """What one attempt of a send counts: its slot on every member's windows (one moment for
    all of them), and its person-times on the app's daily budget."""

    slot_at: float
    booked_at: float
    members: tuple[str, ...]
    app: tuple[Reservation, ...]


class SendLimits:
    """Books sends under the limits in force (counters shared by all replicas)."""

    def __init__(
        self,
        repository: NotifierRepository,
        metrics: NotifierMetrics,
        policy: NotifierPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._metrics = metrics
        self._policy = policy
        self._clock = clock

    def member_keys(self, request: NotifyRequest, agent_id: int) -> list[str]:
        """The slot counter of every member ``request`` goes to (lower-cased, as WeCom)."""
        if not self._policy.member_windows:
            return []
        prefix = f"slots:{request.corp_id}:{agent_id}"
        return [f"{prefix}:{user}" for user in sorted({u.lower() for u in request.to.users})]

    def _app(self, request: NotifyRequest, agent_id: int) -> tuple[str, int] | None:
        if not self._policy.app_windows:
            return None
        to = request.to
        weight = app_weight(
            len(to.users),
            len(to.parties),
            len(to.tags),
            all_members=to.all,
            group_size=self._policy.group_size,
        )
        return f"app:{request.corp_id}:{agent_id}", weight

    def booked(
        self, request: NotifyRequest, agent_id: int, *, slot_at: float, booked_at: float
    ) -> Booking:
        """The booking an earlier delivery of this attempt made (kept in the request record)."""
        app = self._app(request, agent_id)
        reservations: tuple[Reservation, ...] = ()
        if app is not None:
            key, weight = app
            reservations = (Reservation(key, self._policy.app_windows, weight, booked_at),)
        return Booking(slot_at, booked_at, tuple(self.member_keys(request, agent_id)), reservations)

    async def book(self, request: NotifyRequest, agent_id: int) -> Booking:
        """Count this send on the app's budget and give it a slot on every member's windows.

        Raises:
            Postpone: the app's daily budget has no room now; try again at ``due_at``.
            Failed: the send is heavier than the budget allows at all.
        """
        now = self._clock()
        reservations: tuple[Reservation, ...] = ()
        app = self._app(request, agent_id)
        if app is not None:
            key, weight = app
            outcome = await self._repository.reserve(
                key, self._policy.app_windows, weight, self._policy.margin_s
            )
            if outcome is None:
                raise Failed(
                    Failure(
                        "permanent",
                        None,
                        "the message counts more person-times than a send limit allows at all",
                    )
                )
            if not isinstance(outcome, Reservation):
                self._metrics.limit_waits.labels("app", "scheduled").inc()
                raise Postpone(now + outcome, "app")
            reservations = (outcome,)
        members = tuple(self.member_keys(request, agent_id))
        slot = await self._slot(members, now)
        return Booking(slot, now, members, reservations)

    async def _slot(self, members: tuple[str, ...], now: float) -> float:
        """One slot for all ``members``: the latest any of them needs, booked on each."""
        windows, margin = self._policy.member_windows, self._policy.margin_s
        slots = {key: await self._repository.schedule(key, windows, margin, now) for key in members}
        target = max(slots.values(), default=now)
        # Each re-booking at the latest slot gets exactly it, or later if a window is full
        # then: the target only grows, and every member ends on the same one.
        while any(slot != target for slot in slots.values()):
            for key, slot in list(slots.items()):
                if slot != target:
                    await self._repository.unschedule(key, windows, slot)
                    slots[key] = await self._repository.schedule(key, windows, margin, target)
            target = max(slots.values())
        return target

    async def sent(self, booking: Booking, at: float) -> None:
        """The booked send went out, as WeCom answered at ``at``: count it then, not at its
        slot. WeCom counted it at or before ``at``, so a window measured from ``at`` is never
        short, and the 31st message leaves a full window after the 1st really did."""
        if at <= booking.slot_at:
            return
        for key in booking.members:
            try:
                await self._repository.restamp(
                    key, self._policy.member_windows, booking.slot_at, at
                )
            except Exception:
                # The slot stays counted as booked: one send's window ends a little early.
                log.warning("notify_restamp_failed", exc_info=True)

    async def release(self, booking: Booking | None) -> None:
        """Give back a booking whose send never went out."""
        if booking is None:
            return
        for key in booking.members:
            await self._repository.unschedule(key, self._policy.member_windows, booking.slot_at)
        for reservation in booking.app:
            await self._repository.release(reservation)
