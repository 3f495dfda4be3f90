"""Every simulated WeCom call answers in the shape of its documented example.

Each fixture of ``tests/fixtures/wecom_examples/`` is the example on the call's WeCom doc
page (page id recorded). The simulated answer must have the same key names at every level and
the same JSON types (an integer where WeCom shows ``7200``, not ``7200.0``). ``MAY_OMIT`` lists
the only keys an answer may lack, and why.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from shared.sandbox import (
    SANDBOX_PROVIDER_CORPID,
    SANDBOX_PROVIDER_SECRET,
    SANDBOX_SUITE_ID,
    SANDBOX_SUITE_SECRET,
)
from simulator.api import WeComApi
from tests.support.simulator import SimulatorHarness, serve_simulator
from tests.support.wecom_shapes import WeComExample, load_examples, shape_mismatches

CORP, USER = "wwcorp1", "alice"
EXAMPLES = {example.name: example for example in load_examples()}

# Keys WeCom's examples show that no simulated answer has, each with the reason.
_RESELLER = "only when a reseller (dealer) sold the app (§8.5)"
_PROMO = "only for installs from a promotion QR code, unsupported under member authorisation"
_VERIFIED = "a simulated corp is corp_type 'unverified': there is no verification to end"
_APPID = "legacy multi-app suites only ('新开发者请忽略')"
_SHARED = "only for an app shared through 企业互联/上下游"
_AUTH_INFO_OMITS = {
    "dealer_corp_info": _RESELLER,
    "auth_corp_info.verified_end_time": _VERIFIED,
    "auth_info.agent[].appid": _APPID,
    "auth_info.agent[].shared_from": _SHARED,
}
MAY_OMIT: dict[str, dict[str, str]] = {
    "get_permanent_code": {**_AUTH_INFO_OMITS, "register_code_info": _PROMO},
    "v2_get_permanent_code": {"register_code_info": _PROMO},
    "get_auth_info": _AUTH_INFO_OMITS,
    "v2_get_auth_info": _AUTH_INFO_OMITS,
}

# Paths that answer like another path's example: the legacy OAuth paths (§9.2, §9.3).
ALIASES = {
    "/cgi-bin/service/getuserinfo3rd": "getuserinfo3rd",
    "/cgi-bin/service/getuserdetail3rd": "getuserdetail3rd",
}

CARD = {
    "card_type": "button_interaction",
    "task_id": "task1",
    "main_title": {"title": "Approve?"},
    "button_list": [{"text": "OK", "key": "ok"}],
}


async def v1_exchange(sim: SimulatorHarness) -> tuple[str, Any]:
    """Install alice (with a state) and exchange the code with v1: suite token, answer."""
    token = await sim.suite_token()
    code = (await sim.install(CORP, USER, state="s1"))["auth_code"]
    return token, await sim.service("get_permanent_code", token, {"auth_code": code})


async def grant(sim: SimulatorHarness) -> tuple[str, dict[str, str]]:
    token, answer = await v1_exchange(sim)
    return token, {"auth_corpid": CORP, "permanent_code": answer["permanent_code"]}


async def oauth_code(sim: SimulatorHarness) -> str:
    """A snsapi_privateinfo sign-in code for alice from the OAuth page (§9.1): the scope
    whose getuserinfo3rd answer has every key of the example (user_ticket, expires_in)."""
    query = {
        "appid": SANDBOX_SUITE_ID,
        "redirect_uri": "https://app.example/oauth/callback",
        "response_type": "code",
        "scope": "snsapi_privateinfo",
        "state": "x1",
        "sim_corp": CORP,
        "sim_user": USER,
    }
    status, location, body = await sim.page("/connect/oauth2/authorize", query)
    assert status == 302, body
    assert location is not None
    [code] = parse_qs(urlsplit(location).query)["code"]
    return code


async def user_ticket(sim: SimulatorHarness) -> tuple[str, str]:
    await v1_exchange(sim)
    token = await sim.suite_token()
    _, answer = await sim.call(
        "GET",
        "/cgi-bin/service/auth/getuserinfo3rd",
        query={"suite_access_token": token, "code": await oauth_code(sim)},
    )
    ticket: str = answer["user_ticket"]
    return token, ticket


def suite_query(path: str, token: str) -> dict[str, str]:
    # The legacy OAuth paths name the suite token access_token (§9.2).
    return {"access_token" if path in ALIASES else "suite_access_token": token}


async def sent_card(sim: SimulatorHarness) -> tuple[str, int, Any]:
    token, agentid = await sim.corp_token(CORP, USER)
    body = {"touser": f"{USER}|nobody", "toparty": "2", "totag": "3", "agentid": agentid}
    answer = await sim.corp_call(
        "/cgi-bin/message/send", token, {**body, "msgtype": "template_card", "template_card": CARD}
    )
    return token, agentid, answer


async def answer_of(sim: SimulatorHarness, name: str, path: str) -> Any:
    """Drive the simulator to a successful call of ``path`` (the fixture ``name``'s call)."""
    scenario = SCENARIOS[name]
    return await scenario(sim, path)


Scenario = Callable[[SimulatorHarness, str], Awaitable[Any]]


async def _suite_token(sim: SimulatorHarness, path: str) -> Any:
    body = {
        "suite_id": SANDBOX_SUITE_ID,
        "suite_secret": SANDBOX_SUITE_SECRET,
        "suite_ticket": await sim.push_ticket(),
    }
    return (await sim.call("POST", path, body=body))[1]


async def _pre_auth_code(sim: SimulatorHarness, path: str) -> Any:
    return (await sim.call("GET", path, query={"suite_access_token": await sim.suite_token()}))[1]


async def _set_session_info(sim: SimulatorHarness, path: str) -> Any:
    token = await sim.suite_token()
    _, pre = await sim.call(
        "GET", "/cgi-bin/service/get_pre_auth_code", query={"suite_access_token": token}
    )
    body = {"pre_auth_code": pre["pre_auth_code"], "session_info": {"appid": [], "auth_type": 1}}
    return (await sim.call("POST", path, query={"suite_access_token": token}, body=body))[1]


async def _permanent_code(sim: SimulatorHarness, path: str) -> Any:
    token = await sim.suite_token()
    code = (await sim.install(CORP, USER, state="s1"))["auth_code"]
    body = {"auth_code": code}
    return (await sim.call("POST", path, query={"suite_access_token": token}, body=body))[1]


async def _with_grant(sim: SimulatorHarness, path: str) -> Any:
    token, body = await grant(sim)
    return (await sim.call("POST", path, query={"suite_access_token": token}, body=body))[1]


async def _admin_list(sim: SimulatorHarness, path: str) -> Any:
    token, answer = await v1_exchange(sim)
    agentid = answer["auth_info"]["agent"][0]["agentid"]
    users = [USER, {"user_id": "bob", "auth_type": 0}]
    status, _ = await sim.call("POST", "/_sim/admins", body={"corp_id": CORP, "users": users})
    assert status == 200
    body = {"auth_corpid": CORP, "agentid": agentid}
    return (await sim.call("POST", path, query={"suite_access_token": token}, body=body))[1]


async def _provider_token(sim: SimulatorHarness, path: str) -> Any:
    body = {"corpid": SANDBOX_PROVIDER_CORPID, "provider_secret": SANDBOX_PROVIDER_SECRET}
    return (await sim.call("POST", path, body=body))[1]


async def _ticket(sim: SimulatorHarness, path: str) -> Any:
    token, _ = await sim.corp_token(CORP, USER)
    query = {"access_token": token}
    if path == "/cgi-bin/ticket/get":
        query["type"] = "agent_config"
    return (await sim.call("GET", path, query=query))[1]


async def _user_info(sim: SimulatorHarness, path: str) -> Any:
    await v1_exchange(sim)
    token = await sim.suite_token()
    query = {**suite_query(path, token), "code": await oauth_code(sim)}
    return (await sim.call("GET", path, query=query))[1]


async def _user_detail(sim: SimulatorHarness, path: str) -> Any:
    token, ticket = await user_ticket(sim)
    query = suite_query(path, token)
    return (await sim.call("POST", path, query=query, body={"user_ticket": ticket}))[1]


async def _send(sim: SimulatorHarness, path: str) -> Any:
    return (await sent_card(sim))[2]


async def _update_card(sim: SimulatorHarness, path: str) -> Any:
    token, agentid, sent = await sent_card(sim)
    update = {
        "userids": [USER, "bob"],
        "agentid": agentid,
        "response_code": sent["response_code"],
        "button": {"replace_name": "Done"},
    }
    return await sim.corp_call(path, token, update)


async def _recall(sim: SimulatorHarness, path: str) -> Any:
    token, _, sent = await sent_card(sim)
    return await sim.corp_call(path, token, {"msgid": sent["msgid"]})


async def _upload(sim: SimulatorHarness, path: str) -> Any:
    token, _ = await sim.corp_token(CORP, USER)
    form = aiohttp.FormData()
    png = io.BytesIO(b"\x89PNG" + b"0" * 100)
    form.add_field("media", png, filename="cat.png", content_type="image/png")
    query = {"access_token": token, "type": "image"}
    async with sim.session.post(sim.url(path), params=query, data=form) as response:
        return await response.json(content_type=None)


SCENARIOS: dict[str, Scenario] = {
    "get_suite_token": _suite_token,
    "get_pre_auth_code": _pre_auth_code,
    "set_session_info": _set_session_info,
    "get_permanent_code": _permanent_code,
    "v2_get_permanent_code": _permanent_code,
    "get_auth_info": _with_grant,
    "v2_get_auth_info": _with_grant,
    "get_corp_token": _with_grant,
    "get_admin_list": _admin_list,
    "get_provider_token": _provider_token,
    "get_jsapi_ticket": _ticket,
    "ticket_get": _ticket,
    "getuserinfo3rd": _user_info,
    "getuserdetail3rd": _user_detail,
    "message_send": _send,
    "message_update_template_card": _update_card,
    "message_recall": _recall,
    "media_upload": _upload,
}

CASES = [(example.name, example.endpoint) for example in EXAMPLES.values()] + [
    (name, path) for path, name in ALIASES.items()
]


def _case_id(case: tuple[str, str]) -> str:
    return case[1].removeprefix("/cgi-bin/")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
async def test_answer_has_the_documented_shape(case: tuple[str, str]) -> None:
    """The simulated success has the example's keys and JSON types (allowed omissions aside)."""
    name, path = case
    example: WeComExample = EXAMPLES[name]
    async with serve_simulator() as sim:
        answer = await answer_of(sim, name, path)
    assert answer.get("errcode", 0) == 0, answer
    problems = shape_mismatches(answer, example.expected, may_omit=MAY_OMIT.get(name, {}))
    assert problems == [], f"{path} vs page {example.page_id or example.source}: {problems}"


async def test_every_served_api_path_has_a_documented_example() -> None:
    """Each /cgi-bin/ path the simulator serves is compared with a fixture."""
    async with serve_simulator() as sim:
        served = set(WeComApi(sim.state).paths)
    assert served == {path for _, path in CASES}
    assert set(SCENARIOS) == set(EXAMPLES)


async def test_omissions_name_keys_the_examples_have() -> None:
    """Every allowed omission is a key its example really shows (no stale allowances)."""
    async with serve_simulator() as sim:
        for name, omits in MAY_OMIT.items():
            answer = await answer_of(sim, name, EXAMPLES[name].endpoint)
            complete = shape_mismatches(answer, EXAMPLES[name].expected)
            assert {problem.split(": ")[0] for problem in complete} == set(omits), name
            assert all(": missing" in problem for problem in complete), complete
            await sim.call("POST", "/_sim/reset")
