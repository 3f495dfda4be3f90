"""A broker that refuses the credentials: an error line with the URL masked, retried until the
user is fixed, like a broker that is away."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import quote, urlsplit

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from shared.bus.factory import BusComponent, create_bus
from shared.bus.topology import BASE_TOPOLOGY
from tests.support import rabbitmq

pytestmark = pytest.mark.integration

RIGHT = "right-password-" + uuid.uuid4().hex[:8]  # test data, not a real credential
WRONG = "wrong-password-" + uuid.uuid4().hex[:8]  # test data, not a real credential


async def test_wrong_password_is_an_error_retried_until_fixed(amqp_url: str) -> None:
    """Wrong password: error-level lines naming the masked URL; the password fixed: it connects."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    user = f"wecom-auth-{uuid.uuid4().hex[:8]}"
    with rabbitmq.fresh_vhost("wecom-auth") as vhost_url:
        vhost = quote(rabbitmq.vhost_of(vhost_url), safe="")
        rabbitmq.rabbitmqctl("add_user", user, RIGHT)
        try:
            rabbitmq.rabbitmqctl(
                "set_permissions", "-p", rabbitmq.vhost_of(vhost_url), user, ".*", ".*", ".*"
            )
            host = urlsplit(vhost_url).netloc.rpartition("@")[2]
            url = SecretStr(f"amqp://{user}:{WRONG}@{host}/{vhost}")
            bus = create_bus(url, BASE_TOPOLOGY, all_in_one=False)
            component = BusComponent(bus, url=url, retry_initial_s=0.05, retry_max_s=0.2)
            with capture_logs() as logs:
                await component.start()
                for _ in range(200):
                    if sum(e["event"] == "bus_authentication_failed" for e in logs) >= 2:
                        break
                    await asyncio.sleep(0.05)
                # The operator fixes the user; the next attempt gets in.
                await asyncio.to_thread(rabbitmq.rabbitmqctl, "change_password", user, WRONG)
                await asyncio.wait_for(component.connected(), timeout=30)
            assert bus.is_ready
            await component.stop()
        finally:
            rabbitmq.rabbitmqctl("delete_user", user)
    refused = [e for e in logs if e["event"] == "bus_authentication_failed"]
    assert len(refused) >= 2
    assert all(e["log_level"] == "error" for e in refused)
    assert refused[0]["url"] == f"amqp://{user}:***@{host}/{vhost}"
    assert "AMQP_URL" in refused[0]["operator_action"]
    assert refused[1]["retry_in_s"] >= refused[0]["retry_in_s"]
    assert WRONG not in repr(logs)
