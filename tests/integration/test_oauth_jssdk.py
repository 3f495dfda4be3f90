"""``/jssdk/config`` through the simulator: signatures checked against the protocol's
algorithm written out independently, trusted-domain checks, and tickets fetched once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.oauth import DEFAULT_CORP, SignInRig, sign_in_rig

JSAPI = "/cgi-bin/get_jsapi_ticket"
AGENT = "/cgi-bin/ticket/get"


def reference_signature(ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """Protocol doc §10.2: sha1 over the four pairs in this order, values raw; the URL
    without '#' and what follows."""
    page = url.split("#", maxsplit=1)[0]
    pairs = [("jsapi_ticket", ticket), ("noncestr", noncestr), ("timestamp", str(timestamp))]
    pairs.append(("url", page))
    plain = "&".join(f"{key}={value}" for key, value in pairs)
    return hashlib.sha1(plain.encode(), usedforsecurity=False).hexdigest()


def test_the_reference_matches_test_vector_v6() -> None:
    """The test's reference signature reproduces WeCom's published JS-SDK example."""
    ticket = (
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    )
    signature = reference_signature(
        ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value"
    )
    assert signature == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[SignInRig]:
    async with sign_in_rig(tmp_path) as rig:
        await rig.install()
        await rig.sign_in()
        yield rig


async def config_of(rig: SignInRig, url: str) -> tuple[int, dict[str, Any]]:
    async with rig.browser.get(rig.url("/jssdk/config"), params={"url": url}) as answer:
        return answer.status, json.loads(await answer.text())


async def test_configs_are_signed_with_the_corp_and_agent_tickets(rig: SignInRig) -> None:
    """wx.config is signed with the jsapi ticket, agentConfig with the agent ticket, no fragment."""
    page = rig.url("/demo/?a=1&b=%E4%B8%AD")
    status, body = await config_of(rig, page + "#/inner?route=1")
    assert status == 200, body
    config, agent = body["config"], body["agentConfig"]
    assert set(config) == {"appId", "timestamp", "nonceStr", "signature"}
    assert set(agent) == {"corpid", "agentid", "timestamp", "nonceStr", "signature"}
    # Third-party apps: wx.config's appId is the authorising corp's id (§10.3).
    assert config["appId"] == DEFAULT_CORP
    assert agent["corpid"] == DEFAULT_CORP
    assert agent["agentid"] == rig.installations[DEFAULT_CORP]["agent_id"]
    for part in (config, agent):
        assert isinstance(part["timestamp"], int)
        assert abs(part["timestamp"] - rig.clock.wall) < 2
        assert re.fullmatch(r"[A-Za-z0-9]{8,32}", part["nonceStr"])
    jsapi = (await rig.tokens.get("jsapi", corp_id=DEFAULT_CORP)).token
    ticket = (await rig.tokens.get("agent_jsapi", corp_id=DEFAULT_CORP)).token
    assert jsapi != ticket
    assert config["signature"] == reference_signature(
        jsapi, config["nonceStr"], config["timestamp"], page
    )
    assert agent["signature"] == reference_signature(
        ticket, agent["nonceStr"], agent["timestamp"], page
    )


async def test_tickets_are_fetched_once_for_many_requests(rig: SignInRig) -> None:
    """50 page views, one get_jsapi_ticket and one agent ticket call at WeCom."""
    answers = await asyncio.gather(*(config_of(rig, rig.url("/demo/")) for _ in range(50)))
    assert {status for status, _ in answers} == {200}
    calls = await rig.calls()
    assert calls[JSAPI] == 1
    assert calls[AGENT] == 1


async def test_without_a_session_it_is_401(tmp_path: Path) -> None:
    """Asking for a JS-SDK config without a session is a 401 not_signed_in."""
    async with sign_in_rig(tmp_path) as rig:
        status, body = await config_of(rig, rig.url("/demo/"))
        assert status == 401
        assert body["error"]["code"] == "not_signed_in"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/demo/",
        "http://127.0.0.1:1/demo/",
        "http://127.0.0.1.evil.com/",
        "javascript:alert(1)",
        "/demo/",
        "",
    ],
)
async def test_urls_off_the_trusted_domain_are_400(rig: SignInRig, url: str) -> None:
    """URLs off the trusted domain get a 400 and no ticket is fetched from WeCom."""
    status, body = await config_of(rig, url)
    assert status == 400
    assert body["error"]["code"] in ("untrusted_url", "invalid_request")
    assert JSAPI not in await rig.calls()


async def test_a_corp_without_an_installation_is_403(rig: SignInRig) -> None:
    """A signed-in member whose corp has no installation gets 403 not_installed."""
    rig.installations.clear()
    status, body = await config_of(rig, rig.url("/demo/"))
    assert status == 403
    assert body["error"]["code"] == "not_installed"


async def test_installation_data_unavailable_is_503(rig: SignInRig) -> None:
    """When auth_service cannot answer yet the config request is 503 auth_unavailable."""
    rig.auth_error = {"code": "not_ready", "message": "the store is starting"}
    status, body = await config_of(rig, rig.url("/demo/"))
    assert status == 503
    assert body["error"]["code"] == "auth_unavailable"


async def test_wecom_failing_the_ticket_call_is_503(rig: SignInRig) -> None:
    """WeCom answering 500 to the ticket call makes the config request 503 token_unavailable."""
    await rig.sim.call(
        "POST", "/_sim/faults", body={"path": JSAPI, "http_status": 500, "times": 10}
    )
    status, body = await config_of(rig, rig.url("/demo/"))
    assert status == 503
    assert body["error"]["code"] == "token_unavailable"
