"""Injected delays over real HTTP: a late answer still has its effect, an early delay not;
the daily send budget answers 45009."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from tests.support.simulator import SimClock, SimulatorHarness, quiet_settings, serve_simulator

SEND = "/cgi-bin/message/send"


def text(agentid: int, content: str = "hello") -> dict[str, Any]:
    return {"touser": "alice", "msgtype": "text", "agentid": agentid, "text": {"content": content}}


async def send_giving_up(sim: SimulatorHarness, token: str, body: Any, after_s: float) -> None:
    """A client that stops waiting for the answer after ``after_s`` (and drops the connection)."""
    timeout = aiohttp.ClientTimeout(total=after_s)
    async with aiohttp.ClientSession(timeout=timeout) as impatient:
        with pytest.raises(TimeoutError):
            await impatient.post(sim.url(SEND), params={"access_token": token}, json=body)


async def sent_count(sim: SimulatorHarness) -> int:
    _, answer = await sim.call("GET", "/_sim/sent")
    return len(answer["sent"])


async def test_a_delayed_answer_comes_after_the_call_was_processed() -> None:
    """By default (delay_at "answer") the send happens at once and only its answer is late:
    a client that times out meanwhile still sent the message, as with WeCom."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        fault = {"path": SEND, "delay_ms": 2000}
        status, armed = await sim.call("POST", "/_sim/faults", body=fault)
        await send_giving_up(sim, token, text(agentid), after_s=0.2)
        assert await sent_count(sim) == 1
    assert status == 201
    assert armed["fault"]["delay_at"] == "answer"


async def test_a_delay_at_request_comes_before_the_call_is_read() -> None:
    """With delay_at "request" a client that gives up during the delay has no effect."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        fault = {"path": SEND, "delay_ms": 300, "delay_at": "request"}
        assert (await sim.call("POST", "/_sim/faults", body=fault))[0] == 201
        before = sim.in_flight.started
        await send_giving_up(sim, token, text(agentid), after_s=0.1)
        # Once the abandoned send has ended (its handler went with its client), nothing
        # was sent.
        await sim.in_flight.wait_idle(at_least=before + 1)
        assert await sent_count(sim) == 0
        # The fault was used up: the next send goes through at once.
        assert (await sim.corp_call(SEND, token, text(agentid)))["errcode"] == 0
        assert await sent_count(sim) == 1


async def test_a_patient_client_gets_the_late_answer() -> None:
    """The late answer is the call's real answer, after at least the delay."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        await sim.call("POST", "/_sim/faults", body={"path": SEND, "delay_ms": 200})
        started = time.monotonic()
        answer = await sim.corp_call(SEND, token, text(agentid))
        waited = time.monotonic() - started
    assert answer["errcode"] == 0
    assert answer["msgid"]
    assert waited >= 0.2


async def test_an_errcode_fault_is_never_processed_wherever_the_delay_is() -> None:
    """A fault with an errcode replaces the call: nothing is sent, after the delay."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        fault = {"path": SEND, "errcode": -1, "delay_ms": 50}
        await sim.call("POST", "/_sim/faults", body=fault)
        answer = await sim.corp_call(SEND, token, text(agentid))
        assert answer["errcode"] == -1
        assert await sent_count(sim) == 0


async def test_an_unknown_delay_at_is_refused() -> None:
    """delay_at takes "answer" or "request" only."""
    async with serve_simulator() as sim:
        fault = {"path": SEND, "delay_ms": 10, "delay_at": "later"}
        status, answer = await sim.call("POST", "/_sim/faults", body=fault)
    assert status == 400
    assert "delay_at" in answer["error"]["message"]


async def test_the_daily_budget_answers_45009_over_http() -> None:
    """SIM_SEND_LIMIT_APP_DAY=2: the third one-member send of the day is refused, unrecorded."""
    async with serve_simulator(quiet_settings(sim_send_limit_app_day=2)) as sim:
        token, agentid = await sim.corp_token()
        answers = [
            (await sim.corp_call(SEND, token, text(agentid, f"m{n}")))["errcode"] for n in range(3)
        ]
        assert await sent_count(sim) == 2
    assert answers == [0, 0, 45009]


async def test_shrunk_windows_over_http() -> None:
    """SIM_SEND_WINDOW_MINUTE_S shortens the minute window (on the simulator's clock)."""
    clock = SimClock()
    settings = quiet_settings(sim_send_limit_minute=1, sim_send_window_minute_s=2)
    async with serve_simulator(settings, clock=clock) as sim:
        token, agentid = await sim.corp_token()
        for content in ("one", "two"):
            await sim.corp_call(SEND, token, text(agentid, content))
        clock.advance(2)
        await sim.corp_call(SEND, token, text(agentid, "three"))
        _, sent = await sim.call("GET", "/_sim/sent")
    outcomes = [record["outcomes"]["alice"] for record in sent["sent"]]
    assert outcomes == ["delivered", "dropped_limit", "delivered"]


PAGE_QUERIES = {
    "/connect/oauth2/authorize": {
        "appid": "",  # filled in with the SuiteID
        "redirect_uri": "https://app.example.com/cb",
        "response_type": "code",
        "scope": "snsapi_base",
    },
    "/3rdapp/install": {
        "suite_id": "",
        "pre_auth_code": "",  # filled in with a fresh one
        "redirect_uri": "http://127.0.0.1:8080/install/complete",
    },
}


async def page_query(sim: SimulatorHarness, path: str) -> dict[str, str]:
    query = dict(PAGE_QUERIES[path])
    key = "appid" if "appid" in query else "suite_id"
    query[key] = sim.state.credentials.suite_id
    if "pre_auth_code" in query:
        query["pre_auth_code"] = sim.state.issue_pre_auth_code().value
    return query


@pytest.mark.parametrize("path", list(PAGE_QUERIES))
async def test_a_page_answers_an_injected_status_then_recovers(path: str) -> None:
    """A fault on a page answers its http_status with an HTML page, serves nothing, once."""
    async with serve_simulator() as sim:
        fault = {"path": path, "http_status": 503, "errcode": -1}
        status, _ = await sim.call("POST", "/_sim/faults", body=fault)
        assert status == 201
        faulted = await sim.page(path, await page_query(sim, path))
        installs = len(sim.state.installs.corps)
        codes = len(sim.state.oauth.codes)
        then = await sim.page(path, await page_query(sim, path))
        _, calls = await sim.call("GET", "/_sim/calls")
    assert faulted[0] == 503
    assert faulted[1] is None
    assert "<h1>" in faulted[2]
    assert "503" in faulted[2]
    assert (installs, codes) == (0, 0)  # the faulted visit did nothing
    assert then[0] == 302, then[2]
    assert calls["calls"][path] == 2


@pytest.mark.parametrize("path", list(PAGE_QUERIES))
async def test_a_page_fault_delays_the_answer(path: str) -> None:
    """A page fault's delay holds both an error answer and a delay-only answer at least as long."""
    async with serve_simulator() as sim:
        body = {"path": path, "http_status": 500, "delay_ms": 300}
        await sim.call("POST", "/_sim/faults", body=body)
        await sim.call("POST", "/_sim/faults", body={"path": path, "delay_ms": 300})
        started = time.monotonic()
        first = await sim.page(path, await page_query(sim, path))
        middle = time.monotonic()
        second = await sim.page(path, await page_query(sim, path))
        ended = time.monotonic()
    assert first[0] == 500
    assert second[0] == 302, second[2]
    assert middle - started >= 0.3
    assert ended - middle >= 0.3


@pytest.mark.parametrize(
    "fault",
    [
        {"path": "/connect/oauth2/authorize", "errcode": 50001},
        {"path": "/3rdapp/install", "http_status": 302},
        {"path": "/connect/oauth2/other"},
    ],
)
async def test_page_faults_take_an_error_status_or_a_delay_only(fault: dict[str, Any]) -> None:
    """A page fault with an errcode, a redirect status or an unknown page is refused."""
    async with serve_simulator() as sim:
        status, answer = await sim.call("POST", "/_sim/faults", body=fault)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
