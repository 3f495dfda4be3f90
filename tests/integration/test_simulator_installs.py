"""The simulator's install API over real HTTP: codes, permanent codes, corp tokens, limits."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.simulator import SimClock, SimulatorHarness, quiet_settings, serve_simulator


async def installed(sim: SimulatorHarness, token: str, **fields: Any) -> Any:
    """Install alice in wwcorp1 and exchange the code with v1; the v1 answer."""
    answer = await sim.install(**fields)
    return await sim.service("get_permanent_code", token, {"auth_code": answer["auth_code"]})


async def test_get_permanent_code_v1_answers_the_full_shape() -> None:
    """v1 answers a corp token, the permanent code, corp, agent and installer (§8.5)."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        answer = await installed(sim, token, state="s1")
    assert answer["errcode"] == 0
    assert answer["access_token"]
    assert answer["expires_in"] == 7200
    assert answer["permanent_code"]
    assert answer["state"] == "s1"
    assert answer["auth_corp_info"]["corpid"] == "wwcorp1"
    [agent] = answer["auth_info"]["agent"]
    assert (agent["auth_mode"], agent["privilege"]["level"]) == (1, 4)
    assert agent["privilege"]["allow_user"] == ["alice"]
    assert answer["auth_user_info"]["userid"] == "alice"


async def test_get_permanent_code_v2_has_no_token_and_no_auth_info() -> None:
    """v2 is the slim answer of §8.6."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        code = (await sim.install())["auth_code"]
        answer = await sim.service("v2/get_permanent_code", token, {"auth_code": code})
    assert answer["errcode"] == 0
    assert "access_token" not in answer
    assert "auth_info" not in answer
    assert answer["auth_corp_info"] == {"corpid": "wwcorp1", "corp_name": "Sim corp wwcorp1"}
    assert answer["permanent_code"]


async def test_auth_code_works_once_then_40029() -> None:
    """A used auth code, and an unknown one, are refused with 40029."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        code = (await sim.install())["auth_code"]
        first = await sim.service("v2/get_permanent_code", token, {"auth_code": code})
        again = await sim.service("v2/get_permanent_code", token, {"auth_code": code})
        unknown = await sim.service("get_permanent_code", token, {"auth_code": "nope"})
    assert first["errcode"] == 0
    assert (again["errcode"], unknown["errcode"]) == (40029, 40029)


async def test_auth_code_expires_after_600_seconds_on_the_clock() -> None:
    """An auth code exchanged 600 s after the install is refused."""
    clock = SimClock()
    async with serve_simulator(clock=clock) as sim:
        token = await sim.suite_token()
        code = (await sim.install())["auth_code"]
        clock.advance(600)
        answer = await sim.service("get_permanent_code", token, {"auth_code": code})
    assert answer["errcode"] == 40029


async def test_corp_token_and_auth_info_need_the_right_permanent_code() -> None:
    """get_corp_token/get_auth_info answer for the permanent code and 40084 otherwise."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        code = (await installed(sim, token))["permanent_code"]
        good = {"auth_corpid": "wwcorp1", "permanent_code": code}
        bad = {"auth_corpid": "wwcorp1", "permanent_code": "wrong"}
        corp_token = await sim.service("get_corp_token", token, good)
        info = await sim.service("v2/get_auth_info", token, good)
        refused = await sim.service("get_corp_token", token, bad)
        refused_info = await sim.service("get_auth_info", token, bad)
    assert "errcode" not in corp_token  # path/90605: errcode only on failure
    assert corp_token["expires_in"] == 7200
    assert info["auth_info"]["agent"][0]["agentid"] == 1_000_002
    assert (refused["errcode"], refused_info["errcode"]) == (40084, 40084)


async def test_permanent_code_is_void_after_uninstall() -> None:
    """After /_sim/uninstall the permanent code gets 40084 and the corp token 40014."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        first = await installed(sim, token)
        status, gone = await sim.call("POST", "/_sim/uninstall", body={"corp_id": "wwcorp1"})
        body = {"auth_corpid": "wwcorp1", "permanent_code": first["permanent_code"]}
        refused = await sim.service("get_corp_token", token, body)
        _, ticket = await sim.call(
            "GET", "/cgi-bin/get_jsapi_ticket", query={"access_token": first["access_token"]}
        )
    assert status == 200
    assert (gone["cancelled"], gone["pushed"]) == (True, "cancel_auth")
    assert refused["errcode"] == 40084
    assert ticket["errcode"] == 40014


async def test_token_kinds_are_not_interchangeable() -> None:
    """A suite token as access_token is 40014; a corp token as suite_access_token is 40082."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        corp_token = (await installed(sim, token))["access_token"]
        _, as_corp = await sim.call(
            "GET", "/cgi-bin/get_jsapi_ticket", query={"access_token": token}
        )
        as_suite = await sim.service("get_admin_list", corp_token, {"auth_corpid": "wwcorp1"})
        _, jsapi = await sim.call(
            "GET", "/cgi-bin/get_jsapi_ticket", query={"access_token": corp_token}
        )
        _, agent = await sim.call(
            "GET",
            "/cgi-bin/ticket/get",
            query={"access_token": corp_token, "type": "agent_config"},
        )
    assert (as_corp["errcode"], as_suite["errcode"]) == (40014, 40082)
    assert jsapi["errcode"] == 0
    assert jsapi["ticket"]
    assert agent["errcode"] == 0
    assert agent["expires_in"] == 7200


async def test_admin_list_answers_the_installer_by_default() -> None:
    """get_admin_list answers the first installer for the corp's agent (until /_sim/admins
    sets others), 40056 for another agent, 48004 for a corp without the app."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        await installed(sim, token)
        ok = await sim.service(
            "get_admin_list", token, {"auth_corpid": "wwcorp1", "agentid": 1_000_002}
        )
        wrong_agent = await sim.service(
            "get_admin_list", token, {"auth_corpid": "wwcorp1", "agentid": 1}
        )
        absent = await sim.service("get_admin_list", token, {"auth_corpid": "wwnone"})
    assert ok["errcode"] == 0
    assert [admin["userid"] for admin in ok["admin"]] == ["alice"]
    assert (wrong_agent["errcode"], absent["errcode"]) == (40056, 48004)


async def test_set_session_info_records_auth_type_and_refuses_expired_codes() -> None:
    """auth_type 1 is recorded for the pre_auth_code; an expired code is 42007."""
    clock = SimClock()
    async with serve_simulator(clock=clock) as sim:
        token = await sim.suite_token()
        _, pre = await sim.call(
            "GET", "/cgi-bin/service/get_pre_auth_code", query={"suite_access_token": token}
        )
        code = pre["pre_auth_code"]
        body: dict[str, Any] = {
            "pre_auth_code": code,
            "session_info": {"appid": [], "auth_type": 1},
        }
        ok = await sim.service("set_session_info", token, body)
        bad_type = await sim.service(
            "set_session_info", token, {"pre_auth_code": code, "session_info": {"auth_type": 2}}
        )
        clock.advance(1200)
        token = await sim.suite_token()
        expired = await sim.service("set_session_info", token, body)
        recorded = sim.state.session_auth_types[code]
    assert ok["errcode"] == 0
    assert recorded == 1
    assert (bad_type["errcode"], expired["errcode"]) == (40058, 42007)


async def test_redirect_install_returns_the_install_complete_url() -> None:
    """via=redirect answers the configured URL with auth_code, expires_in and state."""
    settings = quiet_settings(sim_install_redirect_url="https://app.example/install/complete")
    async with serve_simulator(settings) as sim:
        answer = await sim.install(via="redirect", state="abc123")
    url = urlsplit(answer["redirect_url"])
    query = parse_qs(url.query)
    assert (url.netloc, url.path) == ("app.example", "/install/complete")
    assert query == {"auth_code": [answer["auth_code"]], "expires_in": ["600"], "state": ["abc123"]}
    assert answer["refused"] is None


async def test_install_over_the_limit_is_refused_with_the_reason() -> None:
    """An eleventh corp is refused: no auth code, the reason in 'refused'."""
    async with serve_simulator(quiet_settings(sim_limit_corps=2)) as sim:
        await sim.install("wwa", via="redirect")
        await sim.install("wwb", via="redirect")
        refused = await sim.install("wwc", via="redirect")
    assert refused == {
        "auth_code": None,
        "redirect_url": None,
        "pushed": None,
        "delivered": False,
        "refused": "corp_limit",
    }


async def test_test_and_released_exclusivity_is_enforced_over_http() -> None:
    """A tester cannot install the released app too; with SIM_LIMITS=off they can."""
    async with serve_simulator() as sim:
        await sim.install(test=True, via="redirect")
        refused = await sim.install(test=False, via="redirect")
    async with serve_simulator(quiet_settings(sim_limits=False)) as sim:
        await sim.install(test=True, via="redirect")
        allowed = await sim.install(test=False, via="redirect")
    assert refused["refused"] == "test_and_released_exclusive"
    assert allowed["refused"] is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sim/install", {"corp_id": "wwcorp1"}),
        ("/_sim/install", {"corp_id": "wwcorp1", "user_id": "a", "via": "carrier-pigeon"}),
        ("/_sim/message", {"corp_id": "wwcorp1", "user_id": "a", "content": ""}),
    ],
)
async def test_control_bodies_are_validated(path: str, body: dict[str, Any]) -> None:
    """A bad control body is a 400 in the services' error shape."""
    async with serve_simulator() as sim:
        status, answer = await sim.call("POST", path, body=body)
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("path", ["/_sim/uninstall", "/_sim/change_auth", "/_sim/event"])
async def test_calls_about_a_corp_without_the_app_are_404(path: str) -> None:
    """Uninstall, change_auth and data pushes need an installed corp/member."""
    body = {"corp_id": "wwnone", "user_id": "a", "event": "enter_agent"}
    if path != "/_sim/event":
        body.pop("event")
    async with serve_simulator() as sim:
        status, answer = await sim.call("POST", path, body=body)
    assert status == 404
    assert answer["error"]["code"] == "not_found"
