"""The shape every stateful bus service shares: open the store, consume once the bus is up,
report readiness, stop in order.

A service subclasses :class:`BusService`, builds its logic in :meth:`BusService.prepare`
(the store is open by then) and lists what it consumes and serves in
:meth:`BusService.subscriptions`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from shared.bus.abc import Bus, BusError, Consumer, Handler, RpcHandler
from shared.bus.factory import BusComponent
from shared.lifecycle import Readiness
from shared.storage.abc import DocumentStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A queue to consume (``handler``) or an RPC queue to serve (``rpc``)."""

    queue: str
    handler: Handler | None = None
    rpc: RpcHandler | None = None
    prefetch: int = 16


class BusService:
    """Base lifecycle component of token_service, auth_service and the notifier."""

    name = "service"
    # How long in-flight handlers may finish when the service stops before being requeued.
    stop_grace_s = 10.0

    def __init__(
        self,
        bus: Bus,
        bus_component: BusComponent,
        store: DocumentStore,
        readiness: Readiness | None,
    ) -> None:
        self.bus = bus
        self.store = store
        self._bus_component = bus_component
        self._consumers: list[Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._store_open = False
        self._serving = False
        if readiness is not None:
            readiness.add("store", lambda: self._store_open)
            readiness.add(self.name, lambda: self._serving)

    async def prepare(self) -> None:
        """Build the service's logic; the store is open."""

    def subscriptions(self) -> list[Subscription]:
        return []

    async def cleanup(self) -> None:
        """Release what :meth:`prepare` made (HTTP clients…); the store closes afterwards."""

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` until the service stops."""
        self._tasks.append(asyncio.create_task(work, name=name))

    async def start(self) -> None:
        await self.store.start()
        self._store_open = True
        await self.prepare()
        self.spawn(self._serve(), f"{self.name}-serve")

    async def _serve(self) -> None:
        # /readyz answers meanwhile; consumers start once the bus is up. A failure to start
        # them (the channel closed just after connecting) is retried: a service that stays up
        # without consuming would be worse than one that is late.
        delay = 0.5
        while True:
            await self._bus_component.connected()
            try:
                await self._subscribe()
            except BusError as exc:
                await self._cancel_consumers()
                log.warning("service_subscribe_failed", service=self.name, error=exc.code)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
            except Exception:
                log.exception("service_subscribe_crashed", service=self.name)
                raise
            else:
                break
        self._serving = True
        queues = [sub.queue for sub in self.subscriptions()]
        log.info("service_serving", service=self.name, queues=queues)

    async def _subscribe(self) -> None:
        for sub in self.subscriptions():
            if sub.rpc is not None:
                consumer = await self.bus.serve(sub.queue, sub.rpc, prefetch=sub.prefetch)
            elif sub.handler is not None:
                consumer = await self.bus.consume(sub.queue, sub.handler, prefetch=sub.prefetch)
            else:
                raise ValueError(f"subscription to {sub.queue!r} has no handler")
            self._consumers.append(consumer)

    async def _cancel_consumers(self) -> None:
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.cancel(grace=self.stop_grace_s)

    async def stop(self) -> None:
        self._serving = False
        await self._cancel_consumers()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.cleanup()
        if self._store_open:
            self._store_open = False
            await self.store.stop()
