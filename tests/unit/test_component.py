"""BusService: a failure to start consuming is retried, not left as a silent idle process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.bus.abc import BusError, Consumer, Delivery, Handler
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY, QueueSpec, Topology
from shared.component import BusService, Subscription
from shared.lifecycle import Readiness
from shared.storage.sqlite import SQLiteStore


class FlakyBus(InProcessBus):
    """Refuses the first ``consume``, as a channel closing right after connecting would."""

    failures = 1

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        if self.failures:
            self.failures -= 1
            raise BusError("channel closed")
        return await super().consume(queue, handler, prefetch=prefetch)


class Echo(BusService):
    name = "echo"

    def subscriptions(self) -> list[Subscription]:
        return [Subscription("test.echo", handler=self.handle)]

    async def handle(self, delivery: Delivery) -> None:
        return None


async def test_a_failed_subscription_is_retried_until_serving(tmp_path: Path) -> None:
    """A subscription refused once is retried until the service is ready; stop clears it."""
    bus = FlakyBus(BASE_TOPOLOGY.merged(Topology(queues=(QueueSpec("test.echo"),))))
    component = BusComponent(bus)
    readiness = Readiness()
    service = Echo(bus, component, SQLiteStore(tmp_path / "db", ()), readiness)
    await component.start()
    await service.start()
    try:
        for _ in range(100):
            if readiness.is_ready:
                break
            await asyncio.sleep(0.05)
        assert readiness.status() == {"store": True, "echo": True}
        assert bus.failures == 0
    finally:
        await service.stop()
        await component.stop()
    assert readiness.status() == {"store": False, "echo": False}
