"""Send-limit scheduling: counting a send on every per-member and per-app window it is subject
to before it goes out, holding it in the handler while room comes soon."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from notifier.domain import Failure, NotifierPolicy, Window, app_weight
from notifier.metrics import NotifierMetrics
from notifier.outcomes import Failed, Wait
from notifier.store import NotifierRepository, Reservation
from shared.notify import NotifyRequest


class SendLimits:
    """Reserves room for a send under the limits in force (counters shared by all replicas)."""

    def __init__(
        self,
        repository: NotifierRepository,
        metrics: NotifierMetrics,
        policy: NotifierPolicy,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._repository = repository
        self._metrics = metrics
        self._policy = policy
        self._clock = clock
        self._sleep = sleep

    def counters(
        self, request: NotifyRequest, agent_id: int
    ) -> list[tuple[str, tuple[Window, ...], int]]:
        """(counter key, windows, weight) of every limit ``request`` counts against."""
        to = request.to
        prefix = f"{request.corp_id}:{agent_id}"
        counters = []
        if self._policy.member_windows:
            for user in sorted({user.lower() for user in to.users}):
                counters.append((f"member:{prefix}:{user}", self._policy.member_windows, 1))
        if self._policy.app_windows:
            weight = app_weight(
                len(to.users),
                len(to.parties),
                len(to.tags),
                all_members=to.all,
                group_size=self._policy.group_size,
            )
            counters.append((f"app:{prefix}", self._policy.app_windows, weight))
        return counters

    async def reserve(self, request: NotifyRequest, agent_id: int) -> list[Reservation]:
        """Count this send on every limit it is subject to, waiting in the handler up to the
        hold time for room; a longer wait raises :class:`Wait` (never a drop).

        Raises:
            Wait: no room within the hold time.
            Failed: the send is heavier than a limit allows at all.
        """
        counters = self.counters(request, agent_id)
        hold_until = self._clock() + self._policy.hold_s
        while True:
            taken: list[Reservation] = []
            wait: float | None = 0.0
            window = None
            for key, windows, weight in counters:
                outcome = await self._repository.reserve(
                    key, windows, weight, self._policy.margin_s
                )
                if isinstance(outcome, Reservation):
                    taken.append(outcome)
                    continue
                wait, window = outcome, key.split(":", 1)[0]
                break
            else:
                return taken
            await self.release(taken)
            if wait is None:
                raise Failed(
                    Failure(
                        "permanent",
                        None,
                        "the message counts more person-times than a send limit allows at all",
                    )
                )
            now = self._clock()
            if now + wait > hold_until:
                self._metrics.limit_waits.labels(window or "", "retry").inc()
                raise Wait("send_limit", window)
            self._metrics.limit_waits.labels(window or "", "held").inc()
            # Replicas woken by one freed bucket should not all race for it at once.
            await self._sleep(wait + random.uniform(0.01, 0.05))  # noqa: S311 - jitter

    async def release(self, reservations: list[Reservation]) -> None:
        """Give back reservations whose message was never sent."""
        for reservation in reservations:
            await self._repository.release(reservation)
