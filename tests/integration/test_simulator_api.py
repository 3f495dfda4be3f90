"""The simulator over real HTTP: WeCom's API, its error codes, and the control API."""

from __future__ import annotations

from typing import Any

import pytest

from shared.sandbox import (
    SANDBOX_PROVIDER_CORPID,
    SANDBOX_PROVIDER_SECRET,
    SANDBOX_SUITE_ID,
    SANDBOX_SUITE_SECRET,
)
from tests.support.simulator import SimClock, SimulatorHarness, serve_simulator

SUITE_TOKEN = "/cgi-bin/service/get_suite_token"
PRE_AUTH_CODE = "/cgi-bin/service/get_pre_auth_code"
PROVIDER_TOKEN = "/cgi-bin/service/get_provider_token"


def suite_body(ticket: str | None, **overrides: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "suite_id": SANDBOX_SUITE_ID,
        "suite_secret": SANDBOX_SUITE_SECRET,
        "suite_ticket": ticket,
    }
    body.update(overrides)
    return body


async def suite_token(sim: SimulatorHarness) -> str:
    ticket = await sim.push_ticket()
    _, answer = await sim.call("POST", SUITE_TOKEN, body=suite_body(ticket))
    token: str = answer["suite_access_token"]
    return token


async def test_suite_token_is_minted_with_the_latest_ticket() -> None:
    """get_suite_token answers a token and WeCom's 7200 s lifetime, errcode only on failure."""
    async with serve_simulator() as sim:
        ticket = await sim.push_ticket()
        status, answer = await sim.call("POST", SUITE_TOKEN, body=suite_body(ticket))
    assert status == 200
    # path/97162: "因历史原因,该接口在调用失败时才返回errcode".
    assert "errcode" not in answer
    assert "errmsg" not in answer
    assert answer["suite_access_token"]
    assert answer["expires_in"] == 7200


@pytest.mark.parametrize(
    ("overrides", "errcode"),
    [
        ({"suite_id": "wwother"}, 40083),
        ({"suite_secret": "wrong"}, 40080),
        ({"suite_ticket": "not-a-ticket"}, 40085),
    ],
)
async def test_get_suite_token_refuses_bad_credentials(
    overrides: dict[str, str], errcode: int
) -> None:
    """A wrong suite_id, suite_secret or ticket gets WeCom's errcode over HTTP 200."""
    async with serve_simulator() as sim:
        ticket = await sim.push_ticket()
        status, answer = await sim.call("POST", SUITE_TOKEN, body=suite_body(ticket, **overrides))
    assert (status, answer["errcode"]) == (200, errcode)
    assert answer["errmsg"]
    assert "suite_access_token" not in answer


async def test_suite_token_needs_a_pushed_ticket_that_is_the_latest() -> None:
    """No ticket yet, or a superseded one, is answered 40085."""
    async with serve_simulator() as sim:
        _, before = await sim.call("POST", SUITE_TOKEN, body=suite_body(None))
        old = await sim.push_ticket()
        await sim.push_ticket()
        _, superseded = await sim.call("POST", SUITE_TOKEN, body=suite_body(old))
    assert before["errcode"] == 40085
    assert superseded["errcode"] == 40085


async def test_suite_ticket_expires_after_thirty_minutes() -> None:
    """On the injected clock the ticket works at 1799 s and is refused at 1800 s."""
    clock = SimClock()
    async with serve_simulator(clock=clock) as sim:
        ticket = await sim.push_ticket()
        clock.advance(1799)
        _, fresh = await sim.call("POST", SUITE_TOKEN, body=suite_body(ticket))
        clock.advance(1)
        _, stale = await sim.call("POST", SUITE_TOKEN, body=suite_body(ticket))
    assert fresh.get("errcode", 0) == 0  # a success carries no errcode (path/97162)
    assert stale["errcode"] == 40085


async def test_pre_auth_code_is_issued_for_a_valid_suite_token() -> None:
    """get_pre_auth_code answers a code valid 1200 s."""
    async with serve_simulator() as sim:
        token = await suite_token(sim)
        _, answer = await sim.call("GET", PRE_AUTH_CODE, query={"suite_access_token": token})
    assert answer["errcode"] == 0
    assert answer["pre_auth_code"]
    assert answer["expires_in"] == 1200


async def test_pre_auth_code_refuses_unknown_expired_and_misplaced_tokens() -> None:
    """Unknown token 40082, expired 42009, token in the body instead of the query 41001."""
    clock = SimClock()
    async with serve_simulator(clock=clock) as sim:
        token = await suite_token(sim)
        _, unknown = await sim.call("GET", PRE_AUTH_CODE, query={"suite_access_token": "nope"})
        _, in_body = await sim.call("POST", PRE_AUTH_CODE, body={"suite_access_token": token})
        clock.advance(7200)
        _, expired = await sim.call("GET", PRE_AUTH_CODE, query={"suite_access_token": token})
    assert unknown["errcode"] == 40082
    assert in_body["errcode"] == 41001
    assert expired["errcode"] == 42009


async def test_wrong_http_method_is_answered_40058() -> None:
    """GET on a POST API and POST on a GET API both get WeCom's parameter error."""
    async with serve_simulator() as sim:
        token = await suite_token(sim)
        _, get_on_post = await sim.call("GET", SUITE_TOKEN)
        _, post_on_get = await sim.call("POST", PRE_AUTH_CODE, query={"suite_access_token": token})
    assert get_on_post["errcode"] == 40058
    assert post_on_get["errcode"] == 40058


async def test_malformed_json_body_is_answered_40058() -> None:
    """A body that is not a JSON object is a parameter error, not a crash."""
    async with (
        serve_simulator() as sim,
        sim.session.post(sim.url(SUITE_TOKEN), data=b"{not json") as response,
    ):
        answer = await response.json(content_type=None)
    assert answer["errcode"] == 40058


async def test_provider_token_checks_corpid_and_secret() -> None:
    """The sandbox provider credentials mint a token; a wrong corpid or secret is refused."""
    good = {"corpid": SANDBOX_PROVIDER_CORPID, "provider_secret": SANDBOX_PROVIDER_SECRET}
    async with serve_simulator() as sim:
        _, ok = await sim.call("POST", PROVIDER_TOKEN, body=good)
        _, corp = await sim.call("POST", PROVIDER_TOKEN, body={**good, "corpid": "wwx"})
        _, secret = await sim.call("POST", PROVIDER_TOKEN, body={**good, "provider_secret": "x"})
    assert ok["errcode"] == 0
    assert ok["provider_access_token"]
    assert ok["expires_in"] == 7200
    assert (corp["errcode"], secret["errcode"]) == (40013, 40001)


async def test_injected_errcode_applies_for_n_calls_then_the_api_recovers() -> None:
    """A fault with times=2 fails two calls with its errcode; the third one succeeds."""
    async with serve_simulator() as sim:
        ticket = await sim.push_ticket()
        status, _ = await sim.call(
            "POST", "/_sim/faults", body={"path": SUITE_TOKEN, "errcode": -1, "times": 2}
        )
        answers = [
            (await sim.call("POST", SUITE_TOKEN, body=suite_body(ticket)))[1].get("errcode", 0)
            for _ in range(3)
        ]
        _, calls = await sim.call("GET", "/_sim/calls")
    assert status == 201
    assert answers == [-1, -1, 0]
    assert calls["calls"][SUITE_TOKEN] == 3


async def test_injected_http_status_and_clearing_faults() -> None:
    """A fault can answer a non-200 status; DELETE /_sim/faults disarms every fault."""
    async with serve_simulator() as sim:
        fault = {"path": PROVIDER_TOKEN, "http_status": 503, "times": None}
        await sim.call("POST", "/_sim/faults", body=fault)
        first, _ = await sim.call("POST", PROVIDER_TOKEN, body={})
        second, _ = await sim.call("POST", PROVIDER_TOKEN, body={})
        _, cleared = await sim.call("DELETE", "/_sim/faults")
        after, answer = await sim.call("POST", PROVIDER_TOKEN, body={})
    assert (first, second) == (503, 503)
    assert cleared == {"cleared": 1}
    assert (after, answer["errcode"]) == (200, 40013)


async def test_invalid_fault_is_rejected_with_the_error_shape() -> None:
    """A fault on a path outside /cgi-bin/ is a 400 naming the field."""
    async with serve_simulator() as sim:
        status, answer = await sim.call("POST", "/_sim/faults", body={"path": "/x", "times": 0})
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert "path" in answer["error"]["message"]


async def test_reset_forgets_tokens_and_counts() -> None:
    """After /_sim/reset a token issued before it is unknown and call counts are empty."""
    async with serve_simulator() as sim:
        token = await suite_token(sim)
        await sim.call("POST", "/_sim/reset")
        _, calls = await sim.call("GET", "/_sim/calls")
        _, answer = await sim.call("GET", PRE_AUTH_CODE, query={"suite_access_token": token})
    assert calls == {"calls": {}}
    assert answer["errcode"] == 40082
