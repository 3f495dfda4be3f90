"""Which bus ``create_bus`` picks from ``AMQP_URL``."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from shared.bus.abc import BusError
from shared.bus.factory import BusComponent, create_bus
from shared.bus.inprocess import InProcessBus
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY
from shared.errors import ConfigurationError


@pytest.mark.parametrize("all_in_one", [True, False])
def test_amqp_url_selects_rabbitmq(all_in_one: bool) -> None:
    """With AMQP_URL set, every process (all-in-one or standalone) talks to RabbitMQ."""
    url = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    bus = create_bus(url, BASE_TOPOLOGY, all_in_one=all_in_one)
    assert isinstance(bus, RabbitMQBus)
    assert not bus.is_ready  # nothing connects before start()


def test_no_amqp_url_is_in_process_only_in_the_all_in_one_process() -> None:
    """A standalone service without AMQP_URL would publish to nobody, so it refuses."""
    assert isinstance(create_bus(None, BASE_TOPOLOGY, all_in_one=True), InProcessBus)
    with pytest.raises(ConfigurationError, match="AMQP_URL is required"):
        create_bus(None, BASE_TOPOLOGY, all_in_one=False)


class _FlakyStartBus(InProcessBus):
    """An in-process bus whose first ``failures`` starts fail like an absent broker."""

    def __init__(self, failures: int) -> None:
        super().__init__(BASE_TOPOLOGY)
        self.failures = failures
        self.attempts = 0

    async def start(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise BusError("broker away")
        await super().start()


async def test_component_keeps_connecting_in_the_background() -> None:
    """start() returns at once; the bus is not ready until a later attempt succeeds."""
    bus = _FlakyStartBus(failures=2)
    component = BusComponent(bus, retry_initial_s=0.01, retry_max_s=0.02)
    await component.start()
    assert not bus.is_ready
    await asyncio.wait_for(component.connected(), timeout=5)
    assert bus.is_ready
    assert bus.attempts == 3
    await component.stop()
    assert not bus.is_ready


async def test_component_stop_while_still_connecting_is_clean() -> None:
    """Stopping before the broker ever came back cancels the attempts and closes the bus."""
    bus = _FlakyStartBus(failures=10**6)
    component = BusComponent(bus, retry_initial_s=0.01, retry_max_s=0.01)
    await component.start()
    await asyncio.sleep(0)
    await component.stop()
    assert not bus.is_ready
