"""The simulator's callbacks: WeCom-shaped at a real gateway, retried like WeCom, recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.sandbox import SANDBOX_SUITE_ID
from tests.support.gateway import Clock, serve_gateway
from tests.support.simulator import SimClock, quiet_settings, serve_simulator


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def receiver(
    answer: Callable[[int], Awaitable[web.Response]],
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A callback receiver on port 0: ``answer(n)`` answers the n-th request (from 1)."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return await answer(len(bodies))

    app = web.Application()
    app.router.add_post("/wecom/command", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/wecom/command")), bodies
    finally:
        await server.close()


async def test_pushed_ticket_becomes_a_suite_ticket_event_at_a_real_gateway() -> None:
    """The simulator's callback decrypts at the gateway into command.suite_ticket."""
    async with serve_gateway(clock=Clock(wall=time.time())) as gateway:
        settings = quiet_settings(sim_command_url=gateway.url("/wecom/command"))
        async with serve_simulator(settings, clock=SimClock(time.time())) as sim:
            status, pushed = await sim.call("POST", "/_sim/suite_ticket")
            events = await gateway.events(1)
            _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert status == 200
    assert pushed["delivered"] is True
    assert events[0]["type"] == "command.suite_ticket"
    assert events[0]["payload"]["suite_ticket"] == pushed["ticket"]
    assert events[0]["suite_id"] == SANDBOX_SUITE_ID
    [attempt] = deliveries["deliveries"]
    assert attempt["kind"] == "suite_ticket"
    assert (attempt["route"], attempt["attempt"], attempt["status"]) == ("command", 1, 200)
    assert attempt["ok"] is True
    assert attempt["latency_ms"] >= 0


async def test_receiver_answering_5xx_gets_the_same_callback_again() -> None:
    """Two 500s then success: three attempts of one identical body, each recorded."""

    async def answer(n: int) -> web.Response:
        return web.Response(status=500) if n <= 2 else web.Response(text="success")

    async with (
        receiver(answer) as (url, bodies),
        serve_simulator(quiet_settings(sim_command_url=url)) as sim,
    ):
        _, pushed = await sim.call("POST", "/_sim/suite_ticket")
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert pushed["delivered"] is True
    attempts = deliveries["deliveries"]
    assert [(a["attempt"], a["status"], a["ok"]) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert attempts[0]["error"] == "http_500"
    assert len(bodies) == 3
    assert len(set(bodies)) == 1


async def test_receiver_that_never_succeeds_gets_one_attempt_plus_three_retries() -> None:
    """A receiver that never answers `success` sees four attempts; delivered is false."""

    async def answer(_: int) -> web.Response:
        return web.Response(text="ok")

    async with (
        receiver(answer) as (url, bodies),
        serve_simulator(quiet_settings(sim_command_url=url)) as sim,
    ):
        _, pushed = await sim.call("POST", "/_sim/suite_ticket")
    assert pushed["delivered"] is False
    assert len(bodies) == 4


async def test_slow_receiver_times_out_and_gets_the_callback_again() -> None:
    """An answer later than the timeout counts as a failed attempt and is retried."""
    release = asyncio.Event()

    async def answer(n: int) -> web.Response:
        if n == 1:
            await release.wait()
        return web.Response(text="success")

    async with receiver(answer) as (url, bodies):
        settings = quiet_settings(sim_command_url=url, sim_callback_timeout_s=0.2)
        async with serve_simulator(settings) as sim:
            _, pushed = await sim.call("POST", "/_sim/suite_ticket")
            _, deliveries = await sim.call("GET", "/_sim/deliveries")
        release.set()
    assert pushed["delivered"] is True
    outcomes = [(a["attempt"], a["error"]) for a in deliveries["deliveries"]]
    assert outcomes == [(1, "timeout"), (2, None)]
    assert len(bodies) == 2


async def test_receiver_answering_success_gets_the_callback_once() -> None:
    """One `success` answer ends delivery: a single attempt, a single request."""

    async def answer(_: int) -> web.Response:
        return web.Response(text="success")

    async with (
        receiver(answer) as (url, bodies),
        serve_simulator(quiet_settings(sim_command_url=url)) as sim,
    ):
        _, pushed = await sim.call("POST", "/_sim/suite_ticket")
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert pushed["delivered"] is True
    assert len(deliveries["deliveries"]) == 1
    assert len(bodies) == 1


async def test_ticket_without_command_url_is_issued_but_not_delivered() -> None:
    """With no SIM_COMMAND_URL the ticket still mints tokens; nothing is attempted."""
    async with serve_simulator() as sim:
        _, pushed = await sim.call("POST", "/_sim/suite_ticket")
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert pushed["delivered"] is False
    assert deliveries == {"deliveries": []}


async def test_tickets_are_pushed_on_start_and_periodically_until_stop() -> None:
    """With a short interval several distinct tickets arrive; stopping cancels the schedule."""

    async def answer(_: int) -> web.Response:
        return web.Response(text="success")

    async with receiver(answer) as (url, bodies):
        settings = quiet_settings(
            sim_command_url=url, sim_ticket_on_start=True, sim_ticket_interval_s=0.05
        )
        async with serve_simulator(settings) as sim:
            await wait_for(lambda: len(sim.state.deliveries) >= 3)
        schedules = [t for t in asyncio.all_tasks() if t.get_name() == "suite-ticket-schedule"]
    assert schedules == []
    assert len(bodies) >= 3
    assert len(set(bodies)) == len(bodies)
