"""The simulator's browser pages and OAuth user calls over real HTTP (protocol doc §8.4, §9)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.sandbox import SANDBOX_SUITE_ID
from simulator.settings import SANDBOX_DEFAULT_CORP, SANDBOX_DEFAULT_USER
from tests.support.simulator import SimClock, SimulatorHarness, quiet_settings, serve_simulator

AUTHORIZE = "/connect/oauth2/authorize"
INSTALL = "/3rdapp/install"
USER_INFO = "/cgi-bin/service/auth/getuserinfo3rd"
USER_DETAIL = "/cgi-bin/service/auth/getuserdetail3rd"
APP_URL = "https://app.example.com/oauth/callback?next=home"
INSTALL_URL = "http://127.0.0.1:8080/install/complete"


def authorize_query(**overrides: str) -> dict[str, str]:
    query = {
        "appid": SANDBOX_SUITE_ID,
        "redirect_uri": APP_URL,
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "xyz1",
        "sim_corp": "wwcorp1",
        "sim_user": "alice",
    }
    query.update(overrides)
    return query


def location_query(location: str | None) -> dict[str, str]:
    assert location is not None
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


async def sign_in(sim: SimulatorHarness, **overrides: str) -> str:
    """Open the authorise page; the code from the redirect (asserting a 302)."""
    status, location, body = await sim.page(AUTHORIZE, authorize_query(**overrides))
    assert status == 302, body
    return location_query(location)["code"]


async def user_info(sim: SimulatorHarness, token: str, code: str, path: str = USER_INFO) -> Any:
    param = "suite_access_token" if "/auth/" in path else "access_token"
    _, answer = await sim.call("GET", path, query={param: token, "code": code})
    return answer


async def test_authorize_redirects_with_code_and_state() -> None:
    """An installed member comes back to redirect_uri with code and state; its query stays."""
    async with serve_simulator() as sim:
        await sim.install()
        status, location, _ = await sim.page(AUTHORIZE, authorize_query())
        _, calls = await sim.call("GET", "/_sim/calls")
    assert status == 302
    assert location is not None
    assert location.startswith("https://app.example.com/oauth/callback?")
    query = location_query(location)
    assert query["state"] == "xyz1"
    assert query["next"] == "home"
    assert query["code"]
    assert calls["calls"][AUTHORIZE] == 1


async def test_getuserinfo3rd_answers_the_member_once() -> None:
    """The code names the member (lower-case keys, no ticket for snsapi_base) and works once."""
    async with serve_simulator() as sim:
        await sim.install()
        token = await sim.suite_token()
        code = await sign_in(sim)
        first = await user_info(sim, token, code)
        again = await user_info(sim, token, code)
        unknown = await user_info(sim, token, "nope")
    assert first["errcode"] == 0
    assert (first["corpid"], first["userid"]) == ("wwcorp1", "alice")
    assert first["open_userid"].startswith("wo")
    assert "user_ticket" not in first
    assert "expires_in" not in first
    assert (again["errcode"], unknown["errcode"]) == (40029, 40029)


async def test_legacy_getuserinfo3rd_path_takes_access_token() -> None:
    """The older /cgi-bin/service/getuserinfo3rd path with access_token= works too."""
    async with serve_simulator() as sim:
        await sim.install()
        token = await sim.suite_token()
        answer = await user_info(sim, token, await sign_in(sim), "/cgi-bin/service/getuserinfo3rd")
        _, missing = await sim.call("GET", "/cgi-bin/service/getuserinfo3rd", query={"code": "x"})
    assert (answer["errcode"], answer["userid"]) == (0, "alice")
    assert missing["errcode"] == 41001


async def test_oauth_code_expires_after_the_configured_ttl() -> None:
    """SIM_OAUTH_CODE_TTL_S bounds a code's life; 40029 after it."""
    clock = SimClock()
    async with serve_simulator(quiet_settings(sim_oauth_code_ttl_s=60), clock=clock) as sim:
        await sim.install()
        token = await sim.suite_token()
        code = await sign_in(sim)
        clock.advance(60)
        answer = await user_info(sim, token, code)
    assert answer["errcode"] == 40029


@pytest.mark.parametrize("path", [USER_DETAIL, "/cgi-bin/service/getuserdetail3rd"])
async def test_privateinfo_scope_gives_a_user_ticket_for_getuserdetail3rd(path: str) -> None:
    """snsapi_privateinfo adds user_ticket and expires_in; the ticket reads the details."""
    async with serve_simulator() as sim:
        await sim.install()
        token = await sim.suite_token()
        info = await user_info(sim, token, await sign_in(sim, scope="snsapi_privateinfo"))
        query = {"suite_access_token": token, "access_token": token}
        body = {"user_ticket": info["user_ticket"]}
        _, detail = await sim.call("POST", path, query=query, body=body)
        _, bad = await sim.call("POST", path, query=query, body={"user_ticket": "nope"})
    assert info["expires_in"] == 7200
    assert (detail["errcode"], detail["userid"], detail["corpid"]) == (0, "alice", "wwcorp1")
    assert bad["errcode"] == 84015


@pytest.mark.parametrize(
    "overrides",
    [
        {"appid": "wwcorp1"},
        {"redirect_uri": ""},
        {"redirect_uri": "/relative/path"},
        {"redirect_uri": "ftp://example.com/x"},
        {"response_type": "token"},
        {"scope": "snsapi_userinfo"},
        {"scope": ""},
        {"state": "not valid!"},
    ],
)
async def test_authorize_refuses_bad_requests_with_a_page(overrides: dict[str, str]) -> None:
    """Each bad parameter gets a 400 HTML page and no redirect."""
    async with serve_simulator() as sim:
        await sim.install()
        status, location, body = await sim.page(AUTHORIZE, authorize_query(**overrides))
    assert status == 400
    assert location is None
    assert body.startswith("<!doctype html>")


async def test_wechat_redirect_fragment_is_ignored() -> None:
    """A '#wechat_redirect' that reached the query is stripped from the state."""
    async with serve_simulator() as sim:
        await sim.install()
        status, location, _ = await sim.page(
            AUTHORIZE, authorize_query(state="abc#wechat_redirect")
        )
    assert status == 302
    assert location_query(location)["state"] == "abc"


async def test_member_without_the_app_gets_an_error_page() -> None:
    """Outside the visible range there is no code: a 403 page naming the member."""
    async with serve_simulator() as sim:
        status, location, body = await sim.page(AUTHORIZE, authorize_query(sim_user="bob"))
    assert (status, location) == (403, None)
    assert "bob" in body
    assert "visible range" in body


async def test_auto_install_on_installs_anyone_through_the_install_path() -> None:
    """SIM_OAUTH_AUTO_INSTALL=on installs the member (create_auth path) and signs them in."""
    async with serve_simulator(quiet_settings(sim_oauth_auto_install="on")) as sim:
        token = await sim.suite_token()
        code = await sign_in(sim, sim_user="bob")
        answer = await user_info(sim, token, code)
        member = sim.state.installs.corps["wwcorp1"].members["bob"]
        auth_codes = len(sim.state.installs.auth_codes)
    assert (answer["errcode"], answer["userid"]) == (0, "bob")
    assert member.installed
    assert not member.test
    assert auth_codes == 1  # the install issued an auth code, as a create_auth carries


async def test_default_member_is_auto_installed_by_default() -> None:
    """Without sim_corp/sim_user the sandbox's default member signs in, installed on the way."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        code = await sign_in(sim, sim_corp="", sim_user="")
        answer = await user_info(sim, token, code)
    assert (answer["corpid"], answer["userid"]) == (SANDBOX_DEFAULT_CORP, SANDBOX_DEFAULT_USER)


async def test_auto_install_off_refuses_even_the_default_member() -> None:
    """SIM_OAUTH_AUTO_INSTALL=off: the faithful reading, nobody is installed by signing in."""
    async with serve_simulator(quiet_settings(sim_oauth_auto_install="off")) as sim:
        status, _, _ = await sim.page(AUTHORIZE, authorize_query(sim_corp="", sim_user=""))
    assert status == 403


async def test_auto_install_respects_the_install_limits() -> None:
    """An auto-install over a limit is refused with a page naming the limit."""
    settings = quiet_settings(sim_oauth_auto_install="on", sim_limit_users=1)
    async with serve_simulator(settings) as sim:
        await sim.install(user_id="alice")
        status, location, body = await sim.page(AUTHORIZE, authorize_query(sim_user="bob"))
    assert (status, location) == (403, None)
    assert "user_limit" in body


async def pre_auth_code(sim: SimulatorHarness, token: str, auth_type: int | None = None) -> str:
    _, answer = await sim.call(
        "GET", "/cgi-bin/service/get_pre_auth_code", query={"suite_access_token": token}
    )
    code: str = answer["pre_auth_code"]
    if auth_type is not None:
        body = {"pre_auth_code": code, "session_info": {"auth_type": auth_type}}
        assert (await sim.service("set_session_info", token, body))["errcode"] == 0
    return code


def install_query(code: str, **overrides: str) -> dict[str, str]:
    query = {
        "suite_id": SANDBOX_SUITE_ID,
        "pre_auth_code": code,
        "redirect_uri": f"{INSTALL_URL}?from=site",
        "state": "st1",
        "sim_corp": "wwcorp9",
        "sim_user": "dora",
    }
    query.update(overrides)
    return query


async def test_install_page_redirects_with_an_auth_code() -> None:
    """The page installs the member and 302s with auth_code, expires_in and state (§8.4)."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        code = await pre_auth_code(sim, token)
        status, location, _ = await sim.page(INSTALL, install_query(code))
        query = location_query(location)
        exchange = await sim.service(
            "v2/get_permanent_code", token, {"auth_code": query["auth_code"]}
        )
        again, _, body = await sim.page(INSTALL, install_query(code))
        _, calls = await sim.call("GET", "/_sim/calls")
    assert status == 302
    assert location is not None
    assert location.startswith(INSTALL_URL)
    assert (query["expires_in"], query["state"], query["from"]) == ("600", "st1", "site")
    assert exchange["errcode"] == 0
    assert exchange["auth_corp_info"]["corpid"] == "wwcorp9"
    assert exchange["state"] == "st1"
    assert again == 400  # the pre_auth_code was used up
    assert "42007" in body
    assert calls["calls"][INSTALL] == 2


async def test_install_page_honours_test_session_info() -> None:
    """auth_type 1 set for the pre_auth_code makes a test install."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        code = await pre_auth_code(sim, token, auth_type=1)
        status, _, _ = await sim.page(INSTALL, install_query(code))
        member = sim.state.installs.corps["wwcorp9"].members["dora"]
    assert status == 302
    assert member.installed
    assert member.test


async def test_install_page_refusal_names_the_limit_and_does_not_redirect() -> None:
    """A test install over the test-account limit is a 403 page, no redirect."""
    async with serve_simulator(quiet_settings(sim_limit_test_accounts=1)) as sim:
        token = await sim.suite_token()
        first = await pre_auth_code(sim, token, auth_type=1)
        second = await pre_auth_code(sim, token, auth_type=1)
        ok, _, _ = await sim.page(INSTALL, install_query(first))
        status, location, body = await sim.page(INSTALL, install_query(second, sim_user="eve"))
    assert ok == 302
    assert (status, location) == (403, None)
    assert "test_account_limit" in body


@pytest.mark.parametrize(
    "overrides",
    [
        {"suite_id": "wwother"},
        {"pre_auth_code": "unknown"},
        {"redirect_uri": "https://elsewhere.example.com/install/complete"},
        {"redirect_uri": "not a url"},
        {"state": "bad state"},
    ],
)
async def test_install_page_refuses_bad_requests(overrides: dict[str, str]) -> None:
    """Wrong suite, unknown code, a redirect outside the install domain: 400 page."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        code = await pre_auth_code(sim, token)
        status, location, body = await sim.page(INSTALL, install_query(code, **overrides))
    assert (status, location) == (400, None)
    assert "<h1>" in body


async def test_install_page_uses_the_default_member() -> None:
    """Without sim_corp/sim_user the configured default member installs."""
    settings = quiet_settings(sim_default_corp="wwdefault", sim_default_user="dflt")
    async with serve_simulator(settings) as sim:
        token = await sim.suite_token()
        code = await pre_auth_code(sim, token)
        status, _, _ = await sim.page(INSTALL, install_query(code, sim_corp="", sim_user=""))
        installed = sim.state.installs.corps["wwdefault"].members["dflt"].installed
    assert status == 302
    assert installed


@pytest.mark.parametrize(
    ("domain", "redirect_uri", "allowed"),
    [
        ("app.example.com", "https://app.example.com/oauth/callback", True),
        ("APP.example.com", "https://app.example.com/cb", True),
        ("app.example.com", "https://evil.example.com/oauth/callback", False),
        ("app.example.com", "https://app.example.com:8443/oauth/callback", False),
        ("app.example.com", "https://sub.app.example.com/cb", False),
        ("127.0.0.1:8080", "http://127.0.0.1:8080/oauth/callback", True),
        ("127.0.0.1:8080", "http://127.0.0.1:9090/oauth/callback", False),
        ("127.0.0.1:8080", "http://localhost:8080/oauth/callback", False),
    ],
)
async def test_authorize_checks_the_trusted_domain(
    domain: str, redirect_uri: str, allowed: bool
) -> None:
    """§9.1/§12: a redirect_uri outside the trusted domain (exact, port too) is 50001."""
    async with serve_simulator(quiet_settings(sim_trusted_domain=domain)) as sim:
        await sim.install()
        status, location, body = await sim.page(
            AUTHORIZE, authorize_query(redirect_uri=redirect_uri)
        )
        codes = len(sim.state.oauth.codes)
    if allowed:
        assert status == 302, body
        assert location is not None
        assert location.startswith(redirect_uri)
        assert codes == 1
    else:
        assert status == 400
        assert location is None
        assert "50001" in body
        assert "trusted domain" in body
        assert "<h1>" in body
        assert codes == 0  # refused before any code is issued


async def test_trusted_domain_is_not_checked_by_default() -> None:
    """Without SIM_TRUSTED_DOMAIN any absolute http(s) redirect_uri is taken."""
    async with serve_simulator() as sim:
        await sim.install()
        status, _, body = await sim.page(
            AUTHORIZE, authorize_query(redirect_uri="https://anything.example.net:4443/cb")
        )
    assert status == 302, body
