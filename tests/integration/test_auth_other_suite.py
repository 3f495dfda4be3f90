"""auth_service ignores, logs and counts an instruction callback of another suite."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auth_service.service import AuthService
from shared.bus.abc import Message
from shared.bus.topology import EVENTS_EXCHANGE
from shared.contracts import EventEnvelope, event_types
from shared.sandbox import SANDBOX_SUITE_ID
from tests.support.installs import install_stack
from tests.support.tokens import eventually

pytestmark = pytest.mark.integration

OTHER_SUITE = "wwanothersuite0001"
V2_EXCHANGE = "/cgi-bin/service/v2/get_permanent_code"


def create_auth(suite_id: str, auth_code: str, event_id: str) -> Message:
    """A ``command.create_auth`` envelope as a gateway of ``suite_id`` would publish it."""
    now = datetime.now(UTC)
    envelope = EventEnvelope(
        id=event_id,
        type=event_types.COMMAND_CREATE_AUTH,
        suite_id=suite_id,
        occurred_at=now,
        received_at=now,
        payload={"auth_code": auth_code},
    )
    return Message(
        body=envelope.model_dump_json().encode(), message_id=envelope.id, type=envelope.type
    )


async def test_a_create_auth_of_another_suite_is_ignored_and_counted(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """Another suite's create_auth exchanges no code and installs nothing; ours then does."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        answer = await stack.install("wwothersuite", "alice", via="redirect")
        code = answer["auth_code"]
        auth = next(s for s in stack.services if isinstance(s, AuthService))
        key = event_types.COMMAND_CREATE_AUTH
        await stack.bus.publish(
            EVENTS_EXCHANGE, key, create_auth(OTHER_SUITE, code, f"other-{time.time_ns()}")
        )

        async def counted() -> float:
            value = auth.other_suite_events(key)
            assert value == 1, value
            return value

        assert await eventually(counted, timeout=15) == 1
        assert await stack.auth.installation("wwothersuite") is None
        assert await stack.calls(V2_EXCHANGE) == 0
        # The same code under our own suite id is applied: the ignore was about the suite.
        await stack.bus.publish(
            EVENTS_EXCHANGE, key, create_auth(SANDBOX_SUITE_ID, code, f"ours-{time.time_ns()}")
        )
        found = await stack.installation("wwothersuite", status="active")
        assert found.corp_id == "wwothersuite"
        assert auth.other_suite_events(key) == 1
