"""The developer console's routes against stand-ins for auth_service, token_service and the
notifier on the in-process bus: sign-in, the pages' data, the test/released move, refusals."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import ConsolePages, build_gateway_app
from gateway.settings import GatewaySettings
from gateway.web.console import COOKIE, sandbox_sign_in_url
from shared.bus.abc import Message
from shared.bus.inprocess import InProcessBus
from shared.bus.product_topology import PRODUCT_TOPOLOGY
from shared.bus.topology import (
    BASE_TOPOLOGY,
    RPC_AUTH_QUEUE,
    RPC_NOTIFY_QUEUE,
    RPC_TOKENS_QUEUE,
    RPC_TOPOLOGY,
)
from shared.errors import Unavailable

KEY = bytes(range(32))
API_KEY = "internal-api-key-for-console-tests"  # pragma: allowlist secret

PRODUCTION_CREDENTIALS: dict[str, Any] = {
    "wecom_suite_id": "wwsuiteconsoletest",
    "wecom_suite_secret": "suite-secret-for-console-tests",  # pragma: allowlist secret
    "wecom_token": "consoletoken",  # pragma: allowlist secret
    "wecom_encoding_aes_key": "a" * 43,
}

INSTALLATIONS: list[dict[str, Any]] = [
    {
        "corp_id": "wwreleased",
        "corp_name": "Acme",
        "members": ["zhangsan", "lisi"],
        "test": False,
        "status": "active",
        "installed_at": "2026-01-01T08:00:00Z",
        "updated_at": "2026-01-02T08:00:00Z",
    },
    {"corp_id": "wwgone", "status": "revoked", "reason": "uninstalled"},
]
QUOTA = {
    "policy": "test",
    "corps": {"used": 8, "limit": 10},
    "users": {"used": 2, "limit": 100},
    "test_accounts": {"used": 10, "limit": 10},
}


@dataclass
class Rig:
    session: aiohttp.ClientSession
    server: TestServer
    auth_requests: list[dict[str, Any]] = field(default_factory=list)
    notify_requests: list[dict[str, Any]] = field(default_factory=list)
    set_test_reply: dict[str, Any] = field(default_factory=dict)
    tokens_down: bool = False

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @property
    def origin(self) -> str:
        return self.url("/").rstrip("/")

    async def sign_in(self) -> None:
        async with self.session.post(
            self.url("/console/login"),
            data={"key": API_KEY},
            headers={"Origin": self.origin},
            allow_redirects=False,
        ) as response:
            assert response.status == 303


async def _make_rig(
    *, sandbox: bool = False, public: str = "http://app.example.test"
) -> AsyncIterator[Rig]:
    bus = InProcessBus(BASE_TOPOLOGY.merged(RPC_TOPOLOGY, PRODUCT_TOPOLOGY))
    await bus.start()
    credentials = {} if sandbox else PRODUCTION_CREDENTIALS
    settings = GatewaySettings(public_base_url=public, **credentials)
    assert settings.sandbox is sandbox
    app = build_gateway_app(settings, bus, web_parts=[ConsolePages(API_KEY, KEY)])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    # unsafe: the test server is an IP address, whose cookies the default jar refuses.
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    made = Rig(session, server)

    async def auth(message: Message) -> bytes:
        body = json.loads(message.body)
        made.auth_requests.append(body)
        replies = {
            "installations": {"installations": INSTALLATIONS},
            "quota": QUOTA,
            "set_test": made.set_test_reply,
        }
        return json.dumps(replies[body["op"]]).encode()

    async def tokens(message: Message) -> bytes:
        if made.tokens_down:
            raise Unavailable("token_service is restarting")
        assert json.loads(message.body) == {"op": "status"}
        return json.dumps(
            {
                "ticket": {
                    "timestamp": "2026-01-01T00:00:00Z",
                    "received_at": "2026-01-01T00:00:00Z",
                },
                "tokens": [
                    {
                        "kind": "corp",
                        "corp_id": "wwreleased",
                        "fetched_at": "2026-01-01T00:00:00Z",
                        "expires_at": "2099-01-01T00:00:00Z",
                    }
                ],
            }
        ).encode()

    async def notify(message: Message) -> bytes:
        body = json.loads(message.body)
        made.notify_requests.append(body)
        if body["op"] == "counts":
            return json.dumps({"counts": {"sent": 5, "failed": 1}}).encode()
        row = {
            "request_id": "req-1",
            "corp_id": "wwreleased",
            "status": "failed",
            "errcode": 81013,
            "errmsg": "user & party & tag all invalid",
            "attempts": 1,
            "finished_at": "2026-01-01T10:00:00Z",
        }
        return json.dumps({"results": [row]}).encode()

    await bus.serve(RPC_AUTH_QUEUE, auth)
    await bus.serve(RPC_TOKENS_QUEUE, tokens)
    await bus.serve(RPC_NOTIFY_QUEUE, notify)
    try:
        yield made
    finally:
        await session.close()
        await server.close()
        await bus.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async for made in _make_rig():
        yield made


@pytest.fixture
async def https_rig() -> AsyncIterator[Rig]:
    async for made in _make_rig(public="https://app.example.test"):
        yield made


@pytest.fixture
async def sandbox_rig() -> AsyncIterator[Rig]:
    async for made in _make_rig(sandbox=True):
        yield made


async def test_root_leads_to_the_console_and_it_asks_for_the_key(rig: Rig) -> None:
    """``/`` redirects to /console, which shows the sign-in form (no data) without a session."""
    async with rig.session.get(rig.url("/"), allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/console"
    async with rig.session.get(rig.url("/console")) as response:
        assert response.status == 200
        page = await response.text()
    assert 'data-page="sign_in"' in page
    assert 'action="/console/login"' in page
    assert rig.auth_requests == []


async def test_the_right_key_signs_in_with_a_strict_httponly_cookie(
    rig: Rig, https_rig: Rig
) -> None:
    """The key on the form sets a signed HttpOnly, SameSite=Strict cookie scoped to /console,
    Secure under an https public URL (and from that public origin)."""
    async with https_rig.session.post(
        https_rig.url("/console/login"),
        data={"key": API_KEY},
        headers={"Origin": "https://app.example.test"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/console"
        cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/console", "Secure"):
        assert attribute in cookie
    assert API_KEY not in cookie
    await rig.sign_in()
    async with rig.session.get(rig.url("/console")) as response:
        assert 'data-page="overview"' in await response.text()


async def test_a_wrong_key_is_a_401_and_signs_nobody_in(rig: Rig) -> None:
    """A wrong key answers 401 with the form again and sets no cookie."""
    async with rig.session.post(
        rig.url("/console/login"),
        data={"key": "not-the-key"},
        headers={"Origin": rig.origin},
        allow_redirects=False,
    ) as response:
        assert response.status == 401
        assert "Set-Cookie" not in response.headers
        assert 'id="refused"' in await response.text()
    async with rig.session.get(rig.url("/console")) as response:
        assert 'data-page="sign_in"' in await response.text()


async def test_a_post_from_another_origin_is_refused(rig: Rig) -> None:
    """Sign-in and the move need a same-origin Origin header: another site's, or none, is 403."""
    for headers in ({"Origin": "https://evil.example"}, {}):
        async with rig.session.post(
            rig.url("/console/login"), data={"key": API_KEY}, headers=headers
        ) as response:
            assert response.status == 403
            assert "Set-Cookie" not in response.headers
    await rig.sign_in()
    async with rig.session.post(
        rig.url("/console/installations/wwreleased/test"),
        data={"test": "1"},
        headers={"Origin": "https://evil.example"},
    ) as response:
        assert response.status == 403
    assert [r for r in rig.auth_requests if r["op"] == "set_test"] == []


async def test_the_overview_shows_limits_freshness_and_counts(rig: Rig) -> None:
    """The overview shows the three gauges with their colours, installations by status, the
    ticket's freshness, cached tokens (never values), the day's notification counts, the QR."""
    await rig.sign_in()
    async with rig.session.get(rig.url("/console")) as response:
        assert response.status == 200
        page = await response.text()
        csp = response.headers["Content-Security-Policy"]
    assert 'id="gauge-corps" data-colour="amber"' in page
    assert 'id="gauge-users" data-colour="green"' in page
    assert 'id="gauge-test_accounts" data-colour="red"' in page
    assert re.search(r'id="installs-active"><div>active</div><div class="big">1<', page)
    assert 'id="ticket" data-colour="red"' in page  # received in 2026-01-01, long ago
    assert "wwreleased" in page
    assert re.search(r'id="notify-sent"[^>]*><div>sent</div><div class="big">5<', page)
    assert 'src="/install/qrcode"' in page
    assert 'data-queue="token_service.events" data-count="0"' in page
    assert "script-src" not in csp
    [counts] = rig.notify_requests
    assert counts["op"] == "counts"
    assert counts["since"] > 0


async def test_a_service_down_is_one_panel_not_a_broken_page(rig: Rig) -> None:
    """token_service refusing leaves the rest of the overview intact and says why."""
    rig.tokens_down = True
    await rig.sign_in()
    async with rig.session.get(rig.url("/console")) as response:
        assert response.status == 200
        page = await response.text()
    assert 'id="tokens-error"' in page
    assert 'id="gauge-corps"' in page


async def test_the_installations_page_and_the_move(rig: Rig) -> None:
    """The page lists each corp with members, kind, status and dates; the move calls set_test
    and comes back to the page saying so."""
    await rig.sign_in()
    async with rig.session.get(rig.url("/console/installations")) as response:
        page = await response.text()
    assert 'id="corp-wwreleased" data-test="0" data-status="active"' in page
    assert "zhangsan, lisi" in page
    assert "2026-01-01 08:00:00 UTC" in page
    assert 'action="/console/installations/wwgone/test"' not in page  # revoked: no move
    rig.set_test_reply = {"installation": {**INSTALLATIONS[0], "test": True}, "refused": None}
    async with rig.session.post(
        rig.url("/console/installations/wwreleased/test"),
        data={"test": "1"},
        headers={"Origin": rig.origin},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/console/installations?moved=wwreleased"
    [move] = [r for r in rig.auth_requests if r["op"] == "set_test"]
    assert move == {"op": "set_test", "corp_id": "wwreleased", "test": True, "wait_s": 0.0}


async def test_a_refused_move_is_shown(rig: Rig) -> None:
    """A move the limits refuse answers 409 with the refusal on the page."""
    await rig.sign_in()
    rig.set_test_reply = {
        "installation": INSTALLATIONS[0],
        "refused": {"limit": "test_accounts", "reason": "10 of 10 used"},
    }
    async with rig.session.post(
        rig.url("/console/installations/wwreleased/test"),
        data={"test": "1"},
        headers={"Origin": rig.origin},
    ) as response:
        assert response.status == 409
        page = await response.text()
    assert 'id="refused"' in page
    assert "test_accounts: 10 of 10 used" in page


async def test_the_notifications_page_filters_by_corp_and_status(rig: Rig) -> None:
    """The filter reaches rpc.notify as corp_id and status; the rows show errcode and reason."""
    await rig.sign_in()
    async with rig.session.get(
        rig.url("/console/notifications"), params={"corp_id": "wwreleased", "status": "failed"}
    ) as response:
        page = await response.text()
    [query] = rig.notify_requests
    assert query == {
        "op": "results",
        "since": 0.0,
        "corp_id": "wwreleased",
        "status": "failed",
        "limit": 100,
    }
    assert "81013" in page
    assert "user &amp; party &amp; tag all invalid" in page
    assert '<option value="failed" selected>' in page


async def test_sign_out_ends_the_session_in_the_browser(rig: Rig) -> None:
    """Sign-out clears the cookie: the console asks for the key again."""
    await rig.sign_in()
    async with rig.session.post(
        rig.url("/console/logout"), headers={"Origin": rig.origin}, allow_redirects=False
    ) as response:
        assert response.status == 303
    async with rig.session.get(rig.url("/console")) as response:
        assert 'data-page="sign_in"' in await response.text()


async def test_the_sign_in_link_works_in_sandbox_mode_only(rig: Rig, sandbox_rig: Rig) -> None:
    """The banner's link signs in on a sandbox and is a 404 elsewhere; a bad token is a 401."""
    link = sandbox_sign_in_url(sandbox_rig.url("/"), KEY)
    path = link[link.index("/console") :]
    async with sandbox_rig.session.get(sandbox_rig.url(path), allow_redirects=False) as response:
        assert response.status == 303
        assert f"{COOKIE}=" in response.headers["Set-Cookie"]
    async with sandbox_rig.session.get(
        sandbox_rig.url("/console/login?token=00"), allow_redirects=False
    ) as response:
        assert response.status == 401
    async with rig.session.get(rig.url(path), allow_redirects=False) as response:
        assert response.status == 404
