"""Install and data callbacks from the simulator arrive at a real gateway as the right events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.gateway import Clock, GatewayHarness, serve_gateway
from tests.support.simulator import SimClock, SimulatorHarness, quiet_settings, serve_simulator


@asynccontextmanager
async def paired(**overrides: Any) -> AsyncIterator[tuple[GatewayHarness, SimulatorHarness]]:
    """A gateway and a simulator pushing to its command and data URLs."""
    async with serve_gateway(clock=Clock(wall=time.time())) as gateway:
        settings = quiet_settings(
            sim_command_url=gateway.url("/wecom/command"),
            sim_data_url=gateway.url("/wecom/data"),
            **overrides,
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


MESSAGES: list[tuple[dict[str, object], dict[str, object]]] = [
    (
        {"msgtype": "image", "pic_url": "https://img.example.com/a.jpg", "media_id": "MEDIA1"},
        {"pic_url": "https://img.example.com/a.jpg", "media_id": "MEDIA1"},
    ),
    (
        {"msgtype": "voice", "media_id": "VOICE1", "format": "amr"},
        {"media_id": "VOICE1", "format": "amr"},
    ),
    (
        {"msgtype": "video", "media_id": "VIDEO1", "thumb_media_id": "THUMB1"},
        {"media_id": "VIDEO1", "thumb_media_id": "THUMB1"},
    ),
    (
        {
            "msgtype": "location",
            "location_x": 23.134521,
            "location_y": 113.358803,
            "scale": 20,
            "label": "广州市海珠区",
        },
        {
            "latitude": 23.134521,
            "longitude": 113.358803,
            "scale": 20,
            "label": "广州市海珠区",
            "app_type": "wxwork",
        },
    ),
    (
        {
            "msgtype": "link",
            "title": "A title",
            "description": "A description",
            "url": "https://example.com/page",
            "pic_url": "https://example.com/pic.png",
        },
        {
            "title": "A title",
            "description": "A description",
            "url": "https://example.com/page",
            "pic_url": "https://example.com/pic.png",
        },
    ),
]


@pytest.mark.parametrize(
    ("fields", "payload"), MESSAGES, ids=[str(m[0]["msgtype"]) for m in MESSAGES]
)
async def test_each_message_type_becomes_its_typed_event(
    fields: dict[str, object], payload: dict[str, object]
) -> None:
    """§6.1: every msgtype arrives as data.message.<msgtype> with WeCom's fields."""
    async with paired() as (gateway, sim):
        await sim.install()
        body = {"corp_id": "wwcorp1", "user_id": "alice", **fields}
        status, answer = await sim.call("POST", "/_sim/message", body=body)
        events = await gateway.events(2)
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert status == 200, answer
    assert answer["delivered"] is True
    message = events[1]
    assert message["type"] == f"data.message.{fields['msgtype']}"
    assert message["payload"]["msg_id"] == answer["msg_id"]
    assert message["payload"]["user_id"] == "alice"
    assert message["payload"]["agent_id"] == 1_000_002
    for key, value in payload.items():
        assert message["payload"][key] == value, key
    assert deliveries["deliveries"][-1]["kind"] == f"message.{fields['msgtype']}"


async def installs_seen(gateway: GatewayHarness, expected: int) -> list[dict[str, Any]]:
    """The next ``expected`` events besides the suite_ticket pushed for one suite token."""
    events = await gateway.events(expected + 1)
    return [e for e in events if e["type"] != "command.suite_ticket"]


async def allow_user(sim: SimulatorHarness, suite: str, corp_id: str = "wwcorp1") -> list[str]:
    """The corp's visible range as get_auth_info reports it."""
    permanent_code = sim.state.installs.corps[corp_id].permanent_code
    answer = await sim.service(
        "get_auth_info", suite, {"auth_corpid": corp_id, "permanent_code": permanent_code}
    )
    users: list[str] = answer["auth_info"]["agent"][0]["privilege"]["allow_user"]
    return users


async def test_later_members_get_create_auth_by_default() -> None:
    """SIM_LATER_MEMBERS=create_auth (default): every install pushes create_auth."""
    async with paired() as (gateway, sim):
        suite = await sim.suite_token()
        first = await sim.install(user_id="alice")
        await sim.service("get_permanent_code", suite, {"auth_code": first["auth_code"]})
        second = await sim.install(user_id="bob")
        events = await installs_seen(gateway, 2)
        users = await allow_user(sim, suite)
    assert [e["type"] for e in events] == ["command.create_auth", "command.create_auth"]
    assert (first["pushed"], second["pushed"]) == ("create_auth", "create_auth")
    assert events[1]["payload"]["auth_code"] == second["auth_code"] is not None
    assert sorted(users) == ["alice", "bob"]


async def test_later_members_get_subscribe_when_configured() -> None:
    """SIM_LATER_MEMBERS=subscribe: a member joining an installed corp is a subscribe event
    for that member (no create_auth, no auth code) and joins get_auth_info's allow_user."""
    async with paired(sim_later_members="subscribe") as (gateway, sim):
        suite = await sim.suite_token()
        first = await sim.install(user_id="alice", state="st1")
        await sim.service("get_permanent_code", suite, {"auth_code": first["auth_code"]})
        second = await sim.install(user_id="bob")
        events = await installs_seen(gateway, 2)
        users = await allow_user(sim, suite)
        other_corp = await sim.install(corp_id="wwcorp2", user_id="carol")
        [other] = await gateway.events(1)
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert first["pushed"] == "create_auth"
    assert (second["auth_code"], second["pushed"], second["delivered"]) == (
        None,
        "subscribe",
        True,
    )
    assert [e["type"] for e in events] == ["command.create_auth", "data.event.subscribe"]
    assert events[1]["corp_id"] == "wwcorp1"
    assert events[1]["payload"]["user_id"] == "bob"
    assert events[1]["payload"]["agent_id"] == 1_000_002
    assert sorted(users) == ["alice", "bob"]
    assert sim.state.installs.corps["wwcorp1"].state == "st1"  # the grant is unchanged
    # The first member of another corp still authorises it with create_auth.
    assert (other_corp["pushed"], other["type"]) == ("create_auth", "command.create_auth")
    kinds = [d["kind"] for d in deliveries["deliveries"]]
    assert kinds.count("event.subscribe") == 1


async def test_subscribe_mode_reports_a_member_leaving_as_unsubscribe() -> None:
    """The other half of §15 q4: under SIM_LATER_MEMBERS=subscribe, a member who leaves
    while others keep the app is that member's unsubscribe event, not change_auth; the
    last member leaving is still cancel_auth."""
    async with paired(sim_later_members="subscribe") as (gateway, sim):
        await sim.install(user_id="alice")
        await sim.install(user_id="bob")
        _, left = await sim.call(
            "POST", "/_sim/uninstall", body={"corp_id": "wwcorp1", "user_id": "bob"}
        )
        _, last = await sim.call("POST", "/_sim/uninstall", body={"corp_id": "wwcorp1"})
        events = await gateway.events(4)
    assert (left["pushed"], left["cancelled"], left["delivered"]) == ("unsubscribe", False, True)
    assert (last["pushed"], last["cancelled"]) == ("cancel_auth", True)
    assert [e["type"] for e in events] == [
        "command.create_auth",
        "data.event.subscribe",
        "data.event.unsubscribe",
        "command.cancel_auth",
    ]
    assert events[2]["corp_id"] == "wwcorp1"
    assert events[2]["payload"]["user_id"] == "bob"


async def test_subscribe_mode_after_the_corp_left_is_create_auth_again() -> None:
    """Once every member left (cancel_auth), the next install authorises the corp anew."""
    async with paired(sim_later_members="subscribe") as (gateway, sim):
        await sim.install(user_id="alice")
        await sim.call("POST", "/_sim/uninstall", body={"corp_id": "wwcorp1"})
        again = await sim.install(user_id="bob")
        events = await gateway.events(3)
    assert again["pushed"] == "create_auth"
    assert [e["type"] for e in events][-1] == "command.create_auth"


async def test_oauth_auto_install_of_a_later_member_is_subscribe() -> None:
    """The authorise page's auto-install follows SIM_LATER_MEMBERS too."""
    async with paired(sim_later_members="subscribe", sim_oauth_auto_install="on") as (
        gateway,
        sim,
    ):
        await sim.install(user_id="alice")
        query = {
            "appid": sim.state.credentials.suite_id,
            "redirect_uri": "https://app.example.com/cb",
            "response_type": "code",
            "scope": "snsapi_base",
            "sim_corp": "wwcorp1",
            "sim_user": "bob",
        }
        status, _, body = await sim.page("/connect/oauth2/authorize", query)
        events = await gateway.events(2)
    assert status == 302, body
    assert events[1]["type"] == "data.event.subscribe"
    assert events[1]["payload"]["user_id"] == "bob"


async def test_install_callbacks_must_be_answered_within_their_shorter_deadline() -> None:
    """§5.2: create_auth gets 1000 ms (shrunk here to 0.2 s), not the 5 s of other
    callbacks: a slower answer is a failed attempt and the callback comes again; a
    suite_ticket answered just as slowly is delivered at the first attempt."""
    requests = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal requests
        await request.read()
        requests += 1
        if requests in (1, 2):  # the first suite_ticket, then the first create_auth
            await asyncio.sleep(0.5)
        return web.Response(text="success")

    app = web.Application()
    app.router.add_post("/wecom/command", slow)
    server = TestServer(app)
    await server.start_server()
    try:
        settings = quiet_settings(
            sim_command_url=str(server.make_url("/wecom/command")),
            sim_install_callback_timeout_s=0.2,
            sim_callback_retry_delay_s=0,
        )
        async with serve_simulator(settings, clock=SimClock(time.time())) as sim:
            _, ticket = await sim.call("POST", "/_sim/suite_ticket")
            installed = await sim.install()
            _, deliveries = await sim.call("GET", "/_sim/deliveries")
    finally:
        await server.close()
    assert ticket["delivered"] is True
    assert installed["delivered"] is True
    outcomes = [(d["kind"], d["attempt"], d["error"]) for d in deliveries["deliveries"]]
    assert outcomes == [
        ("suite_ticket", 1, None),
        ("create_auth", 1, "timeout"),
        ("create_auth", 2, None),
    ]
