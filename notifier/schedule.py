"""Requests waiting for a send-limit window: kept in the store (``notify_schedule``) and
published again to ``notifier.requests`` when they are due, by whichever replica looks first.

A due request is published before it is removed from the schedule, so a crash in between
publishes it twice at worst — which the request record's claim makes harmless."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from notifier.store import NotifierRepository
from shared.bus.abc import Bus, BusError, Message
from shared.bus.topology import NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY

log = structlog.get_logger(__name__)


class RequestSchedule:
    """Keeps postponed requests and publishes them when due."""

    def __init__(
        self,
        repository: NotifierRepository,
        bus: Bus,
        *,
        poll_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._repository = repository
        self._bus = bus
        self._poll_s = poll_s
        self._clock = clock
        self._sleep = sleep

    async def put(self, request_id: str, body: bytes, due_at: float) -> None:
        """Keep the request ``body`` until ``due_at``."""
        await self._repository.put_scheduled(request_id, body, due_at)

    async def publish_due(self) -> int:
        """Publish every request that is due, soonest first; how many were published."""
        now = self._clock()
        published = 0
        for entry in await self._repository.scheduled():
            if entry.due_at > now:
                break
            message = Message(body=entry.body, message_id=entry.request_id, type=NOTIFY_REQUEST_KEY)
            await self._bus.publish(NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY, message)
            if await self._repository.drop_scheduled(entry):
                published += 1
        return published

    async def run(self) -> None:
        """Publish due requests every ``poll_s`` until cancelled; bus and store outages are
        waited out (the requests stay in the schedule)."""
        while True:
            try:
                await self.publish_due()
            except BusError as exc:
                log.warning("notify_schedule_publish_failed", error=exc.code)
            except Exception:
                log.exception("notify_schedule_failed")
            await self._sleep(self._poll_s)
