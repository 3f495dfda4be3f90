"""Install and data callbacks from the simulator arrive at a real gateway as the right events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.gateway import Clock, GatewayHarness, serve_gateway
from tests.support.simulator import SimClock, SimulatorHarness, quiet_settings, serve_simulator


@asynccontextmanager
async def paired() -> AsyncIterator[tuple[GatewayHarness, SimulatorHarness]]:
    """A gateway and a simulator pushing to its command and data URLs."""
    async with serve_gateway(clock=Clock(wall=time.time())) as gateway:
        settings = quiet_settings(
            sim_command_url=gateway.url("/wecom/command"), sim_data_url=gateway.url("/wecom/data")
        )
        async with serve_simulator(settings, clock=SimClock(time.time())) as sim:
            yield gateway, sim


async def test_callback_install_becomes_create_auth_with_the_auth_code() -> None:
    """via=callback pushes create_auth; the gateway publishes command.create_auth."""
    async with paired() as (gateway, sim):
        answer = await sim.install(state="st1")
        [event] = await gateway.events(1)
    assert answer["delivered"] is True
    assert answer["redirect_url"] is None
    assert event["type"] == "command.create_auth"
    assert event["payload"]["auth_code"] == answer["auth_code"]
    assert event["payload"]["state"] == "st1"


async def test_redirect_install_pushes_nothing() -> None:
    """§5.2: an install through the website redirect sends no create_auth."""
    async with paired() as (gateway, sim):
        await sim.install(via="redirect")
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert deliveries["deliveries"] == []
    assert gateway.published() == 0


async def test_uninstall_becomes_cancel_auth_for_the_corp() -> None:
    """/_sim/uninstall of the last member pushes cancel_auth with AuthCorpId."""
    async with paired() as (gateway, sim):
        await sim.install()
        _, answer = await sim.call("POST", "/_sim/uninstall", body={"corp_id": "wwcorp1"})
        events = await gateway.events(2)
    assert answer["delivered"] is True
    assert [e["type"] for e in events] == ["command.create_auth", "command.cancel_auth"]
    assert events[1]["payload"]["auth_corp_id"] == "wwcorp1"


async def test_one_member_leaving_a_corp_is_change_auth() -> None:
    """When other members keep the app, a member's uninstall is reported as change_auth."""
    async with paired() as (gateway, sim):
        await sim.install(user_id="alice")
        await sim.install(user_id="bob")
        body = {"corp_id": "wwcorp1", "user_id": "bob"}
        _, answer = await sim.call("POST", "/_sim/uninstall", body=body)
        events = await gateway.events(3)
    assert (answer["cancelled"], answer["pushed"]) == (False, "change_auth")
    assert events[2]["type"] == "command.change_auth"


async def test_change_auth_and_reset_permanent_code_are_pushed() -> None:
    """change_auth names the corp; reset_permanent_code carries a fresh auth code."""
    async with paired() as (gateway, sim):
        await sim.install()
        _, changed = await sim.call("POST", "/_sim/change_auth", body={"corp_id": "wwcorp1"})
        _, reset = await sim.call("POST", "/_sim/reset_permanent_code", body={"corp_id": "wwcorp1"})
        events = await gateway.events(3)
    assert changed["delivered"] is True
    assert reset["delivered"] is True
    assert events[1]["type"] == "command.change_auth"
    assert events[1]["payload"]["auth_corp_id"] == "wwcorp1"
    assert events[2]["type"] == "command.reset_permanent_code"
    assert events[2]["payload"]["auth_code"] == reset["auth_code"]


async def test_member_message_becomes_data_message_text() -> None:
    """/_sim/message arrives as data.message.text with the content, member and agent."""
    async with paired() as (gateway, sim):
        await sim.install()
        body = {"corp_id": "wwcorp1", "user_id": "alice", "msgtype": "text", "content": "你好"}
        _, answer = await sim.call("POST", "/_sim/message", body=body)
        events = await gateway.events(2)
    message = events[1]
    assert answer["delivered"] is True
    assert message["type"] == "data.message.text"
    assert message["corp_id"] == "wwcorp1"
    assert message["payload"]["content"] == "你好"
    assert message["payload"]["user_id"] == "alice"
    assert message["payload"]["msg_id"] == answer["msg_id"]
    assert message["payload"]["agent_id"] == 1_000_002


async def test_enter_agent_event_becomes_data_event_enter_agent() -> None:
    """/_sim/event with enter_agent arrives as data.event.enter_agent."""
    async with paired() as (gateway, sim):
        await sim.install()
        body = {"corp_id": "wwcorp1", "user_id": "alice", "event": "enter_agent"}
        _, answer = await sim.call("POST", "/_sim/event", body=body)
        events = await gateway.events(2)
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert answer["delivered"] is True
    assert events[1]["type"] == "data.event.enter_agent"
    assert events[1]["payload"]["user_id"] == "alice"
    assert deliveries["deliveries"][-1]["route"] == "data"
    assert deliveries["deliveries"][-1]["kind"] == "event.enter_agent"


async def test_data_callback_is_delivered_on_200_with_any_body() -> None:
    """A data receiver answering 200 with an arbitrary body gets the callback once."""
    hits: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(await request.read())
        return web.Response(text="whatever")

    app = web.Application()
    app.router.add_post("/wecom/data", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        settings = quiet_settings(sim_data_url=str(server.make_url("/wecom/data")))
        async with serve_simulator(settings) as sim:
            await sim.install()
            body = {"corp_id": "wwcorp1", "user_id": "alice", "content": "hi"}
            _, answer = await sim.call("POST", "/_sim/message", body=body)
    finally:
        await server.close()
    assert answer["delivered"] is True
    assert len(hits) == 1
