"""The TokenService component on the in-process bus against the simulator: rpc.tokens
replies and errors, poison events, and WeCom's failures as callers see them."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.bus.abc import Message
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY, EVENTS_EXCHANGE, RPC_TOKENS_QUEUE
from shared.lifecycle import Readiness
from shared.tokens import TokensClient, TokenUnavailable
from tests.support.simulator import SimulatorHarness, serve_simulator
from tests.support.tokens import DATA_KEY, eventually, publish_ticket
from token_service.service import EVENTS_QUEUE, TOKEN_TOPOLOGY, TokenService
from token_service.settings import TokenSettings


@dataclass
class Rig:
    sim: SimulatorHarness
    bus: InProcessBus
    tokens: TokensClient
    readiness: Readiness


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with serve_simulator() as sim:
        settings = TokenSettings(
            wecom_api_base=sim.url("").rstrip("/"),
            data_dir=tmp_path,
            data_key=SecretStr(base64.b64encode(DATA_KEY).decode()),
        )
        bus = InProcessBus(BASE_TOPOLOGY.merged(TOKEN_TOPOLOGY))
        component = BusComponent(bus)
        readiness = Readiness()
        service = TokenService(settings, bus, component, readiness=readiness)
        await component.start()
        await service.start()
        try:
            await eventually(_ready(readiness))
            yield Rig(sim, bus, TokensClient(bus, timeout_s=5), readiness)
        finally:
            await service.stop()
            await component.stop()


def _ready(readiness: Readiness) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        assert readiness.is_ready, readiness.status()

    return check


async def error_of(rig: Rig, body: bytes) -> dict[str, str]:
    reply = await rig.bus.call(RPC_TOKENS_QUEUE, body, timeout=5)
    error: dict[str, str] = json.loads(reply.body)["error"]
    return error


async def test_malformed_requests_get_precise_error_replies(rig: Rig) -> None:
    """Non-JSON, incomplete or unknown-kind rpc.tokens requests get invalid_request naming why."""
    assert (await error_of(rig, b"not json"))["code"] == "invalid_request"
    missing = await error_of(rig, b'{"kind": "corp"}')
    assert missing["code"] == "invalid_request"
    assert "corp_id is required" in missing["message"]
    unknown = await error_of(rig, b'{"kind": "everything"}')
    assert "kind" in unknown["message"]


async def test_not_ready_until_a_ticket_then_tokens_are_served(rig: Rig) -> None:
    """Before a ticket the suite token is not_ready; after one it and pre-auth codes are served."""
    error = await error_of(rig, b'{"kind": "suite"}')
    assert error["code"] == "not_ready"
    ticket = await rig.sim.push_ticket()
    await publish_ticket(rig.bus, ticket)
    reply = await eventually(lambda: rig.tokens.get("suite"))
    assert reply.token
    assert reply.expires_at.tzinfo is not None
    code = await rig.tokens.get("pre_auth_code")
    assert code.token != reply.token


async def test_a_corp_without_a_grant_is_not_installed(rig: Rig) -> None:
    """A corp token for a corp never granted fails with not_installed."""
    await publish_ticket(rig.bus, await rig.sim.push_ticket())
    await eventually(lambda: rig.tokens.get("suite"))
    with pytest.raises(TokenUnavailable) as caught:
        await rig.tokens.get("corp", corp_id="wwnobody")
    assert caught.value.error_code == "not_installed"


@pytest.mark.parametrize(
    ("errcode", "code"),
    [
        (40085, "wecom_credential_invalid"),
        (60020, "wecom_ip_not_allowed"),
        (45009, "wecom_rate_limited"),
    ],
)
async def test_wecom_refusals_reach_the_caller_classified(
    rig: Rig, errcode: int, code: str
) -> None:
    """A WeCom refusal reaches the caller as its classified code, and the next call succeeds."""
    await publish_ticket(rig.bus, await rig.sim.push_ticket())
    await eventually(_events_settled(rig))
    status, _ = await rig.sim.call(
        "POST",
        "/_sim/faults",
        body={"path": "/cgi-bin/service/get_suite_token", "errcode": errcode, "times": 1},
    )
    assert status == 201
    with pytest.raises(TokenUnavailable) as caught:
        await rig.tokens.get("suite")
    assert caught.value.error_code == code
    # The fault was one call: the next request refreshes and succeeds.
    assert (await rig.tokens.get("suite")).token


async def test_system_busy_is_retried_before_the_caller_sees_it(rig: Rig) -> None:
    """Two -1 busy answers are retried inside the call: the caller gets a token, WeCom 3 calls."""
    await publish_ticket(rig.bus, await rig.sim.push_ticket())
    await eventually(_events_settled(rig))
    await rig.sim.call(
        "POST",
        "/_sim/faults",
        body={"path": "/cgi-bin/service/get_suite_token", "errcode": -1, "times": 2},
    )
    assert (await rig.tokens.get("suite")).token
    _, answer = await rig.sim.call("GET", "/_sim/calls")
    assert answer["calls"]["/cgi-bin/service/get_suite_token"] == 3


async def test_a_poison_event_goes_to_the_dead_letter_queue(rig: Rig) -> None:
    """An event whose body is no envelope ends in the dead-letter queue."""
    await rig.bus.publish(
        EVENTS_EXCHANGE,
        "command.suite_ticket",
        Message(body=b"{not an envelope", message_id="poison-1", type="command.suite_ticket"),
    )
    await eventually(_dead_lettered(rig))


def _dead_lettered(rig: Rig) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        assert rig.bus.queue_depth(EVENTS_QUEUE + ".dead") == 1

    return check


def _events_settled(rig: Rig) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        assert rig.bus.queue_depth(EVENTS_QUEUE) == 0
        assert rig.bus.unacked(EVENTS_QUEUE) == 0

    return check
