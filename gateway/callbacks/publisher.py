"""Publishes accepted callbacks exactly once per id within the replay TTL.

A WeCom retry can arrive while the first delivery is still waiting for its confirm; the
second request then waits for the first instead of publishing again. Only a confirmed
publish is remembered, so a failed one never suppresses the retry that follows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

from gateway.callbacks.metrics import GatewayMetrics
from gateway.callbacks.processor import AcceptedCallback
from gateway.replay import ReplayCache
from shared.bus.abc import Bus, Message
from shared.bus.events import EVENT_HEADERS
from shared.bus.topology import EVENTS_EXCHANGE

PublishOutcome = Literal["published", "duplicate"]


class EventPublisher:
    def __init__(
        self,
        bus: Bus,
        replay: ReplayCache,
        metrics: GatewayMetrics,
        *,
        timeout_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._replay = replay
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._monotonic = monotonic
        # The key of every publish under way; a future only once a second request for the
        # same key waits on it (rare: a WeCom retry racing the first delivery's confirm).
        self._inflight: dict[bytes, asyncio.Future[bool] | None] = {}
        # Read when /metrics is scraped instead of being set on every publish.
        metrics.replay_cache_entries.set_function(lambda: len(replay))

    async def publish(self, event: AcceptedCallback) -> PublishOutcome:
        """Publish ``event`` unless its ``dedup_key`` was published within the TTL.

        Raises:
            BusError: the bus did not confirm (the caller answers 503 so WeCom retries).
        """
        key = event.dedup_key
        inflight = self._inflight
        while True:
            if self._replay.seen(key, self._monotonic()):
                return "duplicate"
            if key not in inflight:
                break
            # Another request carries the same callback: its outcome decides ours. If it
            # failed, loop and try ourselves.
            pending = inflight[key]
            if pending is None:
                pending = inflight[key] = asyncio.get_running_loop().create_future()
            if await asyncio.shield(pending):
                return "duplicate"

        inflight[key] = None
        published = False
        try:
            # Built here rather than by event_message(): the body is already JSON (no
            # envelope model on the hot path), but the properties are the same.
            message = Message(
                body=event.body,
                message_id=event.event_id,
                type=event.event_type,
                headers=EVENT_HEADERS,
                # Set here so that no bus has to copy the frozen message to stamp it.
                timestamp=event.received_at,
            )
            started = time.perf_counter()
            await self._bus.publish(
                EVENTS_EXCHANGE, event.event_type, message, timeout=self._timeout_s
            )
            self._metrics.publish_seconds.observe(time.perf_counter() - started)
            self._replay.add(key, self._monotonic())
            published = True
        finally:
            waiting = inflight.pop(key)
            if waiting is not None:
                waiting.set_result(published)
        return "published"
