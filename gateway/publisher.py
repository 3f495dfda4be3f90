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

from gateway.domain import ReplayCache
from gateway.metrics import GatewayMetrics
from shared.bus.abc import Bus, Message
from shared.bus.topology import EVENTS_EXCHANGE
from shared.contracts import SCHEMA_VERSION, EventEnvelope

PublishOutcome = Literal["published", "duplicate"]

_ENVELOPE_JSON = EventEnvelope.__pydantic_serializer__


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

    async def publish(self, envelope: EventEnvelope, key: bytes) -> PublishOutcome:
        """Publish ``envelope`` unless ``key`` was published within the TTL.

        Raises:
            BusError: the bus did not confirm (the caller answers 503 so WeCom retries).
        """
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
            message = Message(
                # The serializer behind model_dump_json(), which returns the JSON as bytes
                # without a round trip through str.
                body=_ENVELOPE_JSON.to_json(envelope),
                message_id=envelope.id,
                type=envelope.type,
                headers={"schema": SCHEMA_VERSION},
                # Set here so that no bus has to copy the frozen message to stamp it.
                timestamp=envelope.received_at,
            )
            started = time.perf_counter()
            await self._bus.publish(
                EVENTS_EXCHANGE, envelope.type, message, timeout=self._timeout_s
            )
            self._metrics.publish_seconds.observe(time.perf_counter() - started)
            self._replay.add(key, self._monotonic())
            published = True
        finally:
            waiting = inflight.pop(key)
            if waiting is not None:
                waiting.set_result(published)
        return "published"
