"""GET /admin's refusals that the simulator cannot produce: a plain member (usertype 5), a
corp without the app, and a deployment without provider credentials."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.web.admin import AdminHandlers
from shared.contracts import Installation
from shared.tokens import TokenUnavailable


class FakeTokens:
    def __init__(self, error: str | None = None) -> None:
        self.error = error

    def source(self, kind: str) -> Any:
        async def fetch(stale: str | None) -> str:
            if self.error is not None:
                raise TokenUnavailable(self.error, "no provider token")
            return "provider-token"

        return fetch


class FakeWeCom:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    async def post(self, path: str, **_: Any) -> dict[str, Any]:
        return self.answer


class FakeAuth:
    def __init__(self, installed: bool) -> None:
        self.installed = installed

    async def installation(self, corp_id: str) -> Installation | None:
        if not self.installed:
            return None
        now = datetime.now(UTC)
        return Installation(
            corp_id=corp_id, corp_name="Acme", agent_id=1, members=["ada"], test=True,
            status="active", reason=None, installed_at=now, updated_at=now,
        )  # fmt: skip


async def _get(answer: dict[str, Any], *, installed: bool = True, error: str | None = None,
               path: str = "/admin?auth_code=code") -> tuple[int, str]:  # fmt: skip
    handlers = AdminHandlers(
        tokens=FakeTokens(error),  # type: ignore[arg-type]
        auth=FakeAuth(installed),  # type: ignore[arg-type]
        wecom=FakeWeCom(answer),  # type: ignore[arg-type]
        data_key=bytes(range(32)),
        session_ttl_s=3600,
        secure_cookies=False,
    )
    app = web.Application()
    app.add_routes(handlers.routes())
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        return response.status, await response.text()


ADMIN = {"usertype": 2, "corp_info": {"corpid": "wwacme"}, "user_info": {"userid": "ada"}}


async def test_an_admin_is_signed_in_and_shown_the_test_installation() -> None:
    """An admin of an installed corp follows the 303 to the page of its installation."""
    status, text = await _get(ADMIN)
    assert status == 200
    assert "测试版" in text
    assert "Acme" in text


async def test_a_member_who_is_not_an_admin_is_refused() -> None:
    """usertype 5 (a member) gets a 403 page, no session."""
    status, text = await _get({**ADMIN, "usertype": 5})
    assert status == 403
    assert 'data-outcome="not_admin"' in text


async def test_a_corp_without_the_app_is_refused() -> None:
    """An admin of a corp that has not installed the app gets a 403 page."""
    status, text = await _get(ADMIN, installed=False)
    assert status == 403
    assert 'data-outcome="not_installed"' in text


async def test_without_provider_credentials_the_page_names_the_settings() -> None:
    """No provider credentials: a 503 page naming WECOM_PROVIDER_CORPID/SECRET."""
    status, text = await _get(ADMIN, error="not_configured")
    assert status == 503
    assert "WECOM_PROVIDER_CORPID" in text
    assert "WECOM_PROVIDER_SECRET" in text


async def test_a_page_without_a_session_asks_to_open_it_from_wecom() -> None:
    """No code and no admin session: 401, open it from the admin console."""
    status, text = await _get(ADMIN, path="/admin")
    assert status == 401
    assert "admin console" in text
