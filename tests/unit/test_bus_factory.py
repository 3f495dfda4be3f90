"""Which bus ``create_bus`` picks from ``AMQP_URL``."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.bus.factory import create_bus
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
