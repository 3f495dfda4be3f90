"""A member session ends server-side: on sign-out (a replayed copy of the cookie is refused)
and when the member's corp uninstalls, checked through ``rpc.auth`` on every request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.oauth import DEFAULT_CORP, SESSION_COOKIE, SignInRig, sign_in_rig

pytestmark = pytest.mark.integration


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[SignInRig]:
    """A signed-in member of an installed corp."""
    async with sign_in_rig(tmp_path) as rig:
        await rig.install()
        await rig.sign_in()
        yield rig


async def logout(rig: SignInRig) -> int:
    """POST /oauth/logout from the member's browser; the status."""
    async with rig.browser.post(rig.url("/oauth/logout")) as answer:
        return answer.status


async def test_a_signed_out_session_is_refused_even_with_the_cookie_replayed(
    rig: SignInRig,
) -> None:
    """After /oauth/logout the old cookie value, sent again, gets 401 on /oauth/me and
    /jssdk/config: the session ended at auth_service, not only in this browser."""
    old = rig.cookie(SESSION_COOKIE)
    assert old is not None
    assert (await rig.get("/oauth/me"))[0] == 200
    assert await logout(rig) == 200
    assert rig.cookie(SESSION_COOKIE) in (None, "")
    rig.set_cookie(SESSION_COOKIE, old)
    status, _, text = await rig.get("/oauth/me")
    assert status == 401
    assert json.loads(text)["error"]["code"] == "not_signed_in"
    status, _, _ = await rig.get("/jssdk/config", params={"url": rig.url("/demo/")})
    assert status == 401
    assert rig.auth_ops["end_session"] == 1


async def test_signing_out_ends_only_that_session(rig: SignInRig) -> None:
    """A fresh sign-in after a sign-out is a new session, and it holds."""
    assert await logout(rig) == 200
    await rig.sign_in()
    assert (await rig.get("/oauth/me"))[0] == 200
    assert len(rig.ended_sessions) == 1


async def test_an_uninstall_ends_the_session(rig: SignInRig) -> None:
    """Once the corp's installation is revoked, /oauth/me and /jssdk/config answer 401."""
    assert (await rig.get("/oauth/me"))[0] == 200
    rig.installations[DEFAULT_CORP] = {**rig.installations[DEFAULT_CORP], "status": "revoked"}
    status, _, text = await rig.get("/oauth/me")
    assert status == 401
    assert "removed" in json.loads(text)["error"]["message"]
    status, _, _ = await rig.get("/jssdk/config", params={"url": rig.url("/demo/")})
    assert status == 401


async def test_every_check_asks_auth_service(rig: SignInRig) -> None:
    """No cache: each /oauth/me is one rpc.auth session check, so an ended session cannot
    live on in a replica's memory."""
    before = rig.auth_ops.get("session", 0)
    for _ in range(3):
        assert (await rig.get("/oauth/me"))[0] == 200
    assert rig.auth_ops["session"] - before == 3


async def test_auth_service_unavailable_is_503_and_the_cookie_stays(rig: SignInRig) -> None:
    """Without an answer from auth_service: /oauth/me is 503, and a sign-out fails (503)
    keeping the cookie, so that the member can sign out again once it is back."""
    rig.auth_error = {"code": "not_ready", "message": "the store is starting"}
    status, _, text = await rig.get("/oauth/me")
    assert status == 503
    assert json.loads(text)["error"]["code"] == "auth_unavailable"
    cookie = rig.cookie(SESSION_COOKIE)
    assert await logout(rig) == 503
    assert rig.cookie(SESSION_COOKIE) == cookie
    rig.auth_error = None
    assert await logout(rig) == 200
    assert (await rig.get("/oauth/me"))[0] == 401
