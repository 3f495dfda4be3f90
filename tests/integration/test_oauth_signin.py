"""Member sign-in through the simulator: login → authorize → callback → session → /oauth/me,
and every way a state, a code, a cookie or a ``next`` can be refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from structlog.testing import capture_logs

from shared.sandbox import SANDBOX_SUITE_ID
from tests.support.oauth import (
    DEFAULT_CORP,
    DEFAULT_USER,
    SESSION_COOKIE,
    STATE_COOKIE,
    SignInRig,
    sign_in_rig,
)

USERINFO = "/cgi-bin/service/auth/getuserinfo3rd"


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[SignInRig]:
    async with sign_in_rig(tmp_path) as rig:
        await rig.install()
        yield rig


async def authorize_link(rig: SignInRig, next_url: str = "/demo/") -> str:
    status, headers, _ = await rig.get("/oauth/login", params={"next": next_url})
    assert status == 302
    return headers["Location"]


async def callback_of(rig: SignInRig, link: str) -> str:
    """Visit the simulator's authorize page; the callback URL it redirects to."""
    async with rig.browser.get(link, allow_redirects=False) as page:
        assert page.status == 302, await page.text()
        return page.headers["Location"]


async def test_login_redirects_to_the_authorize_page_with_a_bound_state(rig: SignInRig) -> None:
    """§9.1: SuiteID as appid, snsapi_base, our callback, an alphanumeric state."""
    status, headers, _ = await rig.get("/oauth/login", params={"next": "/demo/"})
    assert status == 302
    link = urlsplit(headers["Location"])
    assert link.fragment == "wechat_redirect"
    assert f"{link.scheme}://{link.netloc}" == rig.sim.url("").rstrip("/")
    assert link.path == "/connect/oauth2/authorize"
    query = {key: values[0] for key, values in parse_qs(link.query).items()}
    assert query["appid"] == SANDBOX_SUITE_ID
    assert query["redirect_uri"] == rig.url("/oauth/callback")
    assert query["scope"] == "snsapi_base"
    assert query["response_type"] == "code"
    assert query["state"].isalnum()
    assert len(query["state"]) <= 128
    cookie = headers["Set-Cookie"].lower()
    assert cookie.startswith(STATE_COOKIE)
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/oauth/" in cookie
    assert "secure" not in cookie  # PUBLIC_BASE_URL is http here


async def test_the_whole_loop_signs_the_member_in(rig: SignInRig) -> None:
    """login → simulator → callback sets the session cookie → next → /oauth/me."""
    link = await authorize_link(rig, "/demo/?tab=2")
    callback = await callback_of(rig, link)
    async with rig.browser.get(callback, allow_redirects=False) as answer:
        assert answer.status == 302
        assert answer.headers["Location"] == "/demo/?tab=2"
        set_cookies = answer.headers.getall("Set-Cookie")
    session_cookie = next(c for c in set_cookies if c.startswith(SESSION_COOKIE)).lower()
    assert "httponly" in session_cookie
    assert "samesite=lax" in session_cookie
    assert "max-age=28800" in session_cookie
    assert "path=/;" in session_cookie or session_cookie.endswith("path=/")
    assert rig.cookie(STATE_COOKIE) in (None, "")  # the state cookie is spent

    status, headers, text = await rig.get("/oauth/me")
    assert status == 200, text
    member = rig.sim.state.installs.corps[DEFAULT_CORP].members[DEFAULT_USER]
    me = json.loads(text)
    assert me["corp_id"] == DEFAULT_CORP
    assert me["user_id"] == DEFAULT_USER
    assert me["open_userid"] == member.open_userid
    assert me["expires_at"].endswith("+00:00")
    assert headers["Cache-Control"] == "no-store"
    assert (await rig.calls())[USERINFO] == 1


async def test_me_without_a_valid_session_is_401(rig: SignInRig) -> None:
    """/oauth/me without a session cookie answers 401 with the not_signed_in code."""
    status, _, text = await rig.get("/oauth/me")
    assert status == 401
    assert '"code": "not_signed_in"' in text


async def test_a_tampered_session_cookie_is_refused(rig: SignInRig) -> None:
    """A session cookie whose body was altered under its old MAC gets 401 from /oauth/me."""
    await rig.sign_in()
    value = rig.cookie(SESSION_COOKIE)
    assert value
    body, mac = value.split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    rig.set_cookie(SESSION_COOKIE, f"{forged}.{mac}")
    status, _, _ = await rig.get("/oauth/me")
    assert status == 401


async def test_an_expired_session_is_refused(rig: SignInRig) -> None:
    """A session that worked is refused as expired once eight hours have passed."""
    await rig.sign_in()
    assert (await rig.get("/oauth/me"))[0] == 200
    rig.clock.advance(8 * 3600)
    status, _, text = await rig.get("/oauth/me")
    assert status == 401
    assert "expired" in text


async def test_logout_forgets_the_session(rig: SignInRig) -> None:
    """After POST /oauth/logout the same browser is no longer signed in."""
    await rig.sign_in()
    async with rig.browser.post(rig.url("/oauth/logout")) as answer:
        assert answer.status == 200
    assert (await rig.get("/oauth/me"))[0] == 401


async def test_a_cross_site_logout_is_refused(rig: SignInRig) -> None:
    """A logout POST from a foreign Origin gets 403 and the session survives."""
    await rig.sign_in()
    headers = {"Origin": "https://evil.example"}
    async with rig.browser.post(rig.url("/oauth/logout"), headers=headers) as answer:
        assert answer.status == 403
    assert (await rig.get("/oauth/me"))[0] == 200


def assert_error_page(status: int, headers: dict[str, str], text: str, expected: int) -> None:
    assert status == expected, text
    assert headers["Content-Type"].startswith("text/html")
    assert "Traceback" not in text
    assert "重新登录" in text
    assert "Sign in again" in text


async def test_a_tampered_state_is_refused_before_the_code_is_used(rig: SignInRig) -> None:
    """An altered state gets the 400 error page and the code is never sent to WeCom."""
    callback = await callback_of(rig, await authorize_link(rig))
    parts = urlsplit(callback)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    state = query["state"]
    query["state"] = state[:-1] + ("0" if state[-1] != "0" else "1")
    status, headers, text = await rig.get("/oauth/callback", params=query)
    assert_error_page(status, headers, text, 400)
    assert "invalid_state" in text
    assert USERINFO not in await rig.calls()


async def test_an_expired_state_is_refused(rig: SignInRig) -> None:
    """A callback arriving over ten minutes after login gets 400 without calling WeCom."""
    callback = await callback_of(rig, await authorize_link(rig))
    rig.clock.advance(601)
    async with rig.browser.get(callback, allow_redirects=False) as answer:
        text = await answer.text()
        assert_error_page(answer.status, dict(answer.headers), text, 400)
    assert USERINFO not in await rig.calls()


async def test_a_state_from_another_browser_is_refused(rig: SignInRig) -> None:
    """Login CSRF: a victim's browser lacks the attacker's state cookie."""
    callback = await callback_of(rig, await authorize_link(rig))
    rig.browser.cookie_jar.clear()
    async with rig.browser.get(callback, allow_redirects=False) as answer:
        assert answer.status == 400
    assert (await rig.get("/oauth/me"))[0] == 401


async def test_a_replayed_callback_and_a_reused_code_are_refused(rig: SignInRig) -> None:
    """A spent state fails on replay, and a used code under a fresh state gets invalid_code."""
    callback = await callback_of(rig, await authorize_link(rig))
    state_cookie = rig.cookie(STATE_COOKIE)
    assert state_cookie
    async with rig.browser.get(callback, allow_redirects=False) as answer:
        assert answer.status == 302
    # The same callback again, even with the state cookie put back: the state is spent.
    rig.set_cookie(STATE_COOKIE, state_cookie)
    async with rig.browser.get(callback, allow_redirects=False) as answer:
        assert answer.status == 400
        assert "invalid_state" in await answer.text()
    # The same code under a fresh, valid state: WeCom refuses it (40029).
    code = parse_qs(urlsplit(callback).query)["code"][0]
    fresh = await callback_of(rig, await authorize_link(rig))
    fresh_state = parse_qs(urlsplit(fresh).query)["state"][0]
    status, headers, text = await rig.get(
        "/oauth/callback", params={"code": code, "state": fresh_state}
    )
    assert_error_page(status, headers, text, 400)
    assert "invalid_code" in text
    assert (await rig.calls())[USERINFO] == 2


async def test_a_missing_code_is_refused(rig: SignInRig) -> None:
    """A callback with a valid state but no code gets the 400 error page."""
    callback = await callback_of(rig, await authorize_link(rig))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    status, headers, text = await rig.get("/oauth/callback", params={"state": state})
    assert_error_page(status, headers, text, 400)


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.com/",
        "http://evil.com/demo/",
        "//evil.com",
        "//evil.com/%2F..",
        "/\\evil.com",
        "\\\\evil.com",
        "/%5Cevil.com",
        "/%2F%2Fevil.com",
        "/%252F%252Fevil.com",
        "%2F%2Fevil.com",
        "javascript:alert(document.cookie)",
        "https://127.0.0.1.evil.com/",
        "http://127.0.0.1:1/",
        "https://user@evil.com/",
    ],
)
async def test_open_redirect_attempts_are_refused(rig: SignInRig, next_url: str) -> None:
    """Each open-redirect next gets a 400 page at login, with no redirect and no cookie set."""
    status, headers, text = await rig.get("/oauth/login", params={"next": next_url})
    assert_error_page(status, headers, text, 400)
    assert "Location" not in headers
    assert "Set-Cookie" not in headers


async def test_next_may_be_an_absolute_url_on_an_allowed_origin(tmp_path: Path) -> None:
    """Sign-in ends at an absolute next URL on a configured origin or on the gateway itself."""
    async with sign_in_rig(tmp_path, oauth_allowed_origins="https://web.example.com") as rig:
        await rig.install()
        assert await rig.sign_in("https://web.example.com/after") == "https://web.example.com/after"
        assert await rig.sign_in(rig.url("/demo/")) == rig.url("/demo/")


async def test_a_stale_suite_token_is_refreshed_once(rig: SignInRig) -> None:
    """with_token: WeCom rejects the suite token (42009), one refresh, one retry."""
    await rig.sim.call(
        "POST", "/_sim/faults", body={"path": USERINFO, "errcode": 42009, "times": 1}
    )
    before = (await rig.calls())["/cgi-bin/service/get_suite_token"]
    assert await rig.sign_in() == "/demo/"
    calls = await rig.calls()
    assert calls[USERINFO] == 2
    assert calls["/cgi-bin/service/get_suite_token"] == before + 1


async def test_no_suite_token_is_a_clear_503_page(tmp_path: Path) -> None:
    """With no suite token yet (no ticket) the callback shows a 503 page: sign-in is down."""
    async with sign_in_rig(tmp_path, ticket=False) as rig:
        callback = await callback_of(rig, await authorize_link_installed(rig))
        async with rig.browser.get(callback, allow_redirects=False) as answer:
            text = await answer.text()
            assert_error_page(answer.status, dict(answer.headers), text, 503)
            assert "暂时无法登录" in text


async def authorize_link_installed(rig: SignInRig) -> str:
    """Install the default member at the simulator only (no token needed), then log in."""
    await rig.sim.install(DEFAULT_CORP, DEFAULT_USER, via="redirect")
    return await authorize_link(rig)


async def test_a_member_who_left_the_visible_range_gets_a_403_page(rig: SignInRig) -> None:
    """A member uninstalled between authorize and callback gets the 403 error page."""
    callback = await callback_of(rig, await authorize_link(rig))
    status, _ = await rig.sim.call(
        "POST", "/_sim/uninstall", body={"corp_id": DEFAULT_CORP, "user_id": DEFAULT_USER}
    )
    assert status == 200
    async with rig.browser.get(callback, allow_redirects=False) as answer:
        text = await answer.text()
        assert_error_page(answer.status, dict(answer.headers), text, 403)


async def test_codes_cookies_and_tokens_are_never_logged(rig: SignInRig) -> None:
    """Signing in logs oauth_signed_in but never the code, state, session cookie or suite token."""
    link = await authorize_link(rig)
    callback = await callback_of(rig, link)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    state = parse_qs(urlsplit(callback).query)["state"][0]
    with capture_logs() as logs:
        async with rig.browser.get(callback, allow_redirects=False) as answer:
            assert answer.status == 302
        await rig.get("/oauth/me")
    session = rig.cookie(SESSION_COOKIE)
    suite = (await rig.tokens.get("suite")).token
    text = repr(logs)
    assert any(entry["event"] == "oauth_signed_in" for entry in logs)
    for secret in (code, state, session, suite):
        assert secret
        assert secret not in text


async def test_callbacks_are_rate_limited_per_client(tmp_path: Path) -> None:
    """Past the per-minute limit a client's callbacks get a 429 page and cost no WeCom call."""
    async with sign_in_rig(tmp_path, oauth_callback_rate_per_minute=2) as rig:
        await rig.install()
        for _ in range(2):
            assert (await rig.sign_in()) == "/demo/"
        calls_before = (await rig.calls()).get(USERINFO, 0)
        callback = await callback_of(rig, await authorize_link(rig))
        status, headers, text = await rig.get(callback.removeprefix(rig.base))
        assert_error_page(status, headers, text, 429)
        assert "rate_limited" in text
        assert (await rig.calls()).get(USERINFO, 0) == calls_before
        rig.clock.wall += 61
        status, _, _ = await rig.get(callback.removeprefix(rig.base))
        assert status == 302
