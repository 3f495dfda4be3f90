"""The business-settings page (GET /admin) in Chromium: an admin arriving from WeCom's admin
console sees their corp's installation; a forged or reused code and a non-admin do not.

Debian's ``/usr/bin/chromium`` driven by playwright (see test_browser_signin.py); RabbitMQ as
for the other install tests."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.installs import install_pages, install_stack

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.mark.timeout(120)
async def test_the_business_settings_page_for_an_admin_a_forged_code_and_a_reused_one(
    chromium: Path, module_amqp_url: str, tmp_path: Path
) -> None:
    """Admin → signed in and shown the installation (zh first, members, kind, uninstall
    help), the code gone from the URL; a forged code and the same code again get 403 pages;
    a member who is not an admin gets no login code from WeCom."""
    from playwright.async_api import async_playwright  # noqa: PLC0415 -- after the probe

    async with install_stack(module_amqp_url, tmp_path / "data") as stack:
        await stack.install("wwadmin", "ada", via="callback")
        await stack.install("wwadmin", "bob", via="callback")
        await stack.installation("wwadmin", status="active")
        status, login = await stack.sim.call(
            "POST", "/_sim/admin_login", body={"corp_id": "wwadmin", "user_id": "ada"}
        )
        assert status == 200
        [code] = parse_qs(urlsplit(login["redirect_url"]).query)["auth_code"]
        refused, _ = await stack.sim.call(
            "POST", "/_sim/admin_login", body={"corp_id": "wwadmin", "user_id": "bob"}
        )
        assert refused == 403
        async with install_pages(stack) as pages, async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=["--no-sandbox"]
            )
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                answer = await page.goto(pages.url(f"/admin?auth_code={code}"))
                assert answer is not None
                assert answer.status == 200
                assert page.url == pages.url("/admin")  # the single-use code left the URL
                body = await page.locator("main").text_content() or ""
                assert body.index("业务设置") < body.index("How to uninstall")
                assert await page.locator("#corp").text_content() == "Sim corp wwadmin"
                assert "正式版" in (await page.locator("#kind").text_content() or "")
                members = await page.locator("#members li").all_text_contents()
                assert members == ["ada", "bob"]
                await page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
                cookies = {c["name"]: c for c in await page.context.cookies()}
                assert cookies["wecom_admin"]["httpOnly"]
                assert cookies["wecom_admin"]["sameSite"] == "Lax"
                # The same code again, and a forged one: clear 403 pages, no session.
                fresh = await browser.new_page()
                for bad in (code, "forged-code-123"):
                    answer = await fresh.goto(pages.url(f"/admin?auth_code={bad}"))
                    assert answer is not None
                    assert answer.status == 403
                    text = await fresh.locator("main").text_content() or ""
                    assert "登录链接无效" in text
                    assert "not valid" in text
                await fresh.screenshot(path=str(tmp_path / "admin-refused.png"))
                answer = await fresh.goto(pages.url("/admin"))
                assert answer is not None
                assert answer.status == 401
            finally:
                await browser.close()
        assert (tmp_path / "admin.png").stat().st_size > 0
