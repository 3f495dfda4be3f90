"""The gateway's install routes and internal API against stand-ins for token_service and
auth_service on the in-process bus: what they publish, call and answer, including failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import InternalApiRoutes, MemberPages, build_gateway_app
from gateway.settings import GatewaySettings
from shared.bus.abc import Delivery, Message
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    EVENTS_EXCHANGE,
    NOTIFY_EXCHANGE,
    NOTIFY_REQUEST_KEY,
    RPC_AUTH_QUEUE,
    RPC_TOKENS_QUEUE,
    RPC_TOPOLOGY,
    Binding,
    QueueSpec,
    Topology,
)
from shared.errors import Unavailable
from tests.support.simulator import serve_simulator

KEY = bytes(range(32))
API_KEY = "internal-api-key-for-tests-0123"
CAPTURE = "test.gateway.installs"


@dataclass
class Rig:
    session: aiohttp.ClientSession
    server: TestServer
    published: list[Message] = field(default_factory=list)
    auth_answers: dict[str, Any] = field(default_factory=dict)
    token_error: str | None = None

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    capture = QueueSpec(
        CAPTURE,
        bindings=(
            Binding(EVENTS_EXCHANGE, "install.#"),
            Binding(NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY),
        ),
        dead_letter=False,
    )
    bus = InProcessBus(BASE_TOPOLOGY.merged(RPC_TOPOLOGY, Topology(queues=(capture,))))
    await bus.start()
    async with serve_simulator() as sim:
        settings = GatewaySettings(
            wecom_api_base=sim.url("").rstrip("/"),
            wecom_install_base="https://install.example.test",
            public_base_url="https://app.example.test",
        )
        app = build_gateway_app(
            settings, bus, web_parts=[MemberPages(KEY), InternalApiRoutes(API_KEY)]
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        session = aiohttp.ClientSession()
        made = Rig(session, server)
        ticket_token = await sim.suite_token()

        async def tokens(message: Message) -> bytes:
            if made.token_error is not None:
                raise Unavailable(made.token_error)
            kind = json.loads(message.body)["kind"]
            if kind == "pre_auth_code":
                _, answer = await sim.call(
                    "GET",
                    "/cgi-bin/service/get_pre_auth_code",
                    query={"suite_access_token": ticket_token},
                )
                token = answer["pre_auth_code"]
            else:
                token = ticket_token
            return json.dumps({"token": token, "expires_at": "2030-01-01T00:00:00Z"}).encode()

        async def auth(message: Message) -> bytes:
            op = json.loads(message.body)["op"]
            return json.dumps(made.auth_answers.get(op, {})).encode()

        async def collect(delivery: Delivery) -> None:
            made.published.append(delivery.message)

        await bus.serve(RPC_TOKENS_QUEUE, tokens)
        await bus.serve(RPC_AUTH_QUEUE, auth)
        await bus.consume(CAPTURE, collect)
        try:
            yield made
        finally:
            await session.close()
            await server.close()
            await bus.close()


async def test_install_redirects_to_wecom_with_a_fresh_code_and_a_signed_state(rig: Rig) -> None:
    """/install redirects to WeCom's page with a pre_auth_code and a signed test state."""
    async with rig.session.get(rig.url("/install?test=1"), allow_redirects=False) as response:
        assert response.status == 302
        location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        "https://install.example.test/3rdapp/install"
    )
    query = parse_qs(location.query)
    assert query["redirect_uri"] == ["https://app.example.test/install/complete"]
    assert query["pre_auth_code"][0]
    assert query["state"][0].startswith("i1t")


async def test_install_without_tokens_says_so_without_a_5xx_stack(rig: Rig) -> None:
    """With no suite ticket yet /install answers a 503 'unavailable' page, not a traceback."""
    rig.token_error = "no suite_ticket yet"
    async with rig.session.get(rig.url("/install"), allow_redirects=False) as response:
        assert response.status == 503
        assert 'data-outcome="unavailable"' in await response.text()


async def test_complete_publishes_the_code_and_shows_the_outcome(rig: Rig) -> None:
    """/install/complete publishes install.redirect with the verified state, shows the outcome."""
    rig.auth_answers["install_outcome"] = {"status": "installed", "corp_name": "Acme"}
    async with rig.session.get(rig.url("/install"), allow_redirects=False) as response:
        state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
    query = {"auth_code": "code-1", "state": state, "expires_in": "600"}
    async with rig.session.get(rig.url("/install/complete"), params=query) as response:
        assert response.status == 200
        assert "Acme" in await response.text()
    [message] = [m for m in rig.published if m.type == "install.redirect"]
    payload = json.loads(message.body)["payload"]
    assert payload == {
        "auth_code": "code-1",
        "state": state,
        "state_valid": True,
        "test": False,
        "app_state": None,
    }


async def test_a_redirect_without_our_state_is_not_processed(rig: Rig) -> None:
    """Only installs started at /install come back with our signed state; anything else would
    make us call WeCom for whoever asks."""
    for state in (None, "state001", "i1t9999999999" + "0" * 48):
        query = {"auth_code": "code-2", **({"state": state} if state else {})}
        async with rig.session.get(rig.url("/install/complete"), params=query) as response:
            assert response.status == 400
            assert "did not start from this app" in await response.text()
    assert rig.published == []


async def test_the_callers_state_travels_through_wecom(rig: Rig) -> None:
    """A caller's state comes back in install.redirect's app_state; a non-alnum one is a 400."""
    rig.auth_answers["install_outcome"] = {"status": "processing"}
    async with rig.session.get(
        rig.url("/install?state=order42"), allow_redirects=False
    ) as response:
        state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
    assert state.endswith("order42")
    async with rig.session.get(
        rig.url("/install/complete"), params={"auth_code": "code-3", "state": state}
    ) as response:
        assert response.status == 202
    [message] = [m for m in rig.published if m.type == "install.redirect"]
    assert json.loads(message.body)["payload"]["app_state"] == "order42"
    async with rig.session.get(
        rig.url("/install?state=not-alnum!"), allow_redirects=False
    ) as response:
        assert response.status == 400


async def test_the_install_routes_are_rate_limited_per_client(rig: Rig) -> None:
    """After 30 requests a minute from one client the install routes answer 429."""
    statuses = []
    for _ in range(35):
        async with rig.session.get(rig.url("/install/complete")) as response:
            statuses.append(response.status)
    assert statuses.count(400) == 30  # the default 30 per minute, then refused
    assert statuses[-1] == 429


async def test_complete_without_a_code_is_a_clear_400(rig: Rig) -> None:
    """/install/complete without an auth code is a 400 saying so, and publishes nothing."""
    async with rig.session.get(rig.url("/install/complete?state=x")) as response:
        assert response.status == 400
        assert "auth code is missing" in await response.text()
    assert rig.published == []


async def test_the_internal_api_needs_the_key(rig: Rig) -> None:
    """The internal API answers 401 without the exact bearer key and 200 with it."""
    rig.auth_answers["quota"] = {"policy": "lifetime", "corps": {"used": 1, "limit": 10}}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": API_KEY}):
        async with rig.session.get(rig.url("/api/v1/quota"), headers=headers) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "unauthorized"
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    async with rig.session.get(rig.url("/api/v1/quota"), headers=bearer) as response:
        assert response.status == 200
        assert (await response.json())["corps"] == {"used": 1, "limit": 10}


async def test_notifications_are_validated_then_published(rig: Rig) -> None:
    """A valid notification is 202 and published under its id; too long or non-JSON is a 400."""
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    request = {
        "id": "req-1",
        "corp_id": "wwcorp",
        "to": {"users": ["alice"]},
        "message": {"msgtype": "text", "text": {"content": "hi"}},
    }
    async with rig.session.post(
        rig.url("/api/v1/notifications"), json=request, headers=bearer
    ) as response:
        assert response.status == 202
        assert await response.json() == {"id": "req-1"}
    too_long = {**request, "message": {"msgtype": "text", "text": {"content": "x" * 3000}}}
    async with rig.session.post(
        rig.url("/api/v1/notifications"), json=too_long, headers=bearer
    ) as response:
        assert response.status == 400
        error = (await response.json())["error"]
        assert "2048 bytes" in error["message"]
        assert "xxxx" not in error["message"]
    async with rig.session.post(
        rig.url("/api/v1/notifications"), data=b"not json", headers=bearer
    ) as response:
        assert response.status == 400
    [message] = [m for m in rig.published if m.type == NOTIFY_REQUEST_KEY]
    assert message.message_id == "req-1"


async def _raw_request(rig: Rig, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes no well-behaved client would, and read the whole answer."""
    reader, writer = await asyncio.open_connection(rig.server.host, rig.server.port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_a_non_utf8_authorization_header_is_401_not_500(rig: Rig) -> None:
    """Header bytes that are not UTF-8 are a wrong key like any other."""
    answer = await _raw_request(
        rig, b"GET /api/v1/quota HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xc3"
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
    assert b'"unauthorized"' in answer


async def test_deeply_nested_json_on_the_internal_api_is_400(rig: Rig) -> None:
    """JSON nested past the interpreter's recursion limit is a bad request, not a crash."""
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        async with rig.session.post(
            rig.url("/api/v1/notifications"), data=body, headers=bearer
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_request"
    assert not [m for m in rig.published if m.type == NOTIFY_REQUEST_KEY]


async def test_pages_send_security_headers_and_no_server_version(rig: Rig) -> None:
    """HTML pages forbid framing and sniffing and allow only their own inline blocks."""
    async with rig.session.get(rig.url("/install/complete"), allow_redirects=False) as response:
        assert response.content_type == "text/html"
        headers = response.headers
        body = await response.read()
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    [style] = re.findall(rb"<style>(.*?)</style>", body, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp
    assert headers["Server"] == "wecom-suite"
    async with rig.session.get(rig.url("/api/v1/quota")) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in response.headers
        assert response.headers["Server"] == "wecom-suite"


async def test_a_malformed_request_gets_no_server_version_either(rig: Rig) -> None:
    """aiohttp's own 400 for an unparsable request names no software version."""
    answer = await _raw_request(rig, b"GET /x HTTP/1.1\r\nHost: x\r\nBad Header")
    assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400")
    assert b"aiohttp/" not in answer
    assert b"Python/" not in answer


async def test_an_installation_is_moved_between_test_and_released(rig: Rig) -> None:
    """POST /api/v1/installations/{corp_id}/test: 200 with the installation, 409 when the
    other limits are full, 404 for no installation, 400 for a body without a boolean."""
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    url = rig.url("/api/v1/installations/wwcorp/test")
    rig.auth_answers["set_test"] = {"installation": {"corp_id": "wwcorp", "test": True}}
    async with rig.session.post(url, json={"test": True}, headers=bearer) as response:
        assert response.status == 200
        assert (await response.json())["installation"]["test"] is True
    rig.auth_answers["set_test"] = {
        "installation": {"corp_id": "wwcorp"},
        "refused": {"limit": "corps", "reason": "at most 10 enterprises"},
    }
    async with rig.session.post(url, json={"test": False}, headers=bearer) as response:
        assert response.status == 409
        assert "at most 10 enterprises" in (await response.json())["error"]["message"]
    rig.auth_answers["set_test"] = {"installation": None, "refused": None}
    async with rig.session.post(url, json={"test": False}, headers=bearer) as response:
        assert response.status == 404
    for body in (b"{}", b'{"test": "yes"}', b"[]", b"nope"):
        async with rig.session.post(url, data=body, headers=bearer) as response:
            assert response.status == 400
    async with rig.session.post(url, json={"test": True}) as response:
        assert response.status == 401


async def test_a_lost_install_tells_the_member_to_install_again(rig: Rig) -> None:
    """An install whose result was lost shows a 410 page asking to install again."""
    rig.auth_answers["install_outcome"] = {"status": "lost"}
    async with rig.session.get(rig.url("/install"), allow_redirects=False) as response:
        state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
    query = {"auth_code": "code-lost", "state": state}
    async with rig.session.get(rig.url("/install/complete"), params=query) as response:
        assert response.status == 410
        text = await response.text()
    assert 'data-outcome="lost"' in text
    assert "install the app again" in text
    assert text.index("重新安装") < text.index("install the app again")  # Chinese first


async def test_an_offline_app_refuses_new_installs_with_a_clear_page() -> None:
    """INSTALLS_OPEN=false: /install answers a bilingual 403 page and asks WeCom nothing."""
    bus = InProcessBus(BASE_TOPOLOGY.merged(RPC_TOPOLOGY))
    await bus.start()
    settings = GatewaySettings(
        installs_open=False,
        wecom_install_base="https://install.example.test",
        public_base_url="https://app.example.test",
    )
    server = TestServer(
        build_gateway_app(settings, bus, web_parts=[MemberPages(KEY)]), host="127.0.0.1"
    )
    await server.start_server()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/install"), allow_redirects=False) as response,
        ):
            assert response.status == 403
            text = await response.text()
        assert 'data-outcome="installs_closed"' in text
        body = text[text.index("<main") :]
        assert body.index("应用已下线") < body.index("The app is offline")  # Chinese first
        assert "existing installations keep working" in text
    finally:
        await server.close()
        await bus.close()
