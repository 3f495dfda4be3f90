"""Headless Chromium against ``wecom-suite run`` in sandbox mode: the sign-in from the demo
page, and the install pages.

The browser is Debian's ``/usr/bin/chromium`` driven by playwright; nothing downloads a
browser. Without it the tests skip, or fail under ``REQUIRE_SERVICES=1``. The whole sandbox
loop runs for real: the simulator's authorize page installs the default member (create_auth
→ gateway → auth_service → auth.granted → token_service) before it redirects back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.settings import SANDBOX_DEFAULT_CORP as DEFAULT_CORP
from simulator.settings import SANDBOX_DEFAULT_USER as DEFAULT_USER
from tests.support.process import wecom_suite_run

pytestmark = pytest.mark.browser


@dataclass
class Sandbox:
    base: str

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox ``wecom-suite run``; the simulator's own limits off so ours decide."""
    with wecom_suite_run(env={"DATA_DIR": str(tmp_path), "SIM_LIMITS": "off"}) as (_, base):
        yield Sandbox(base)


def _csp_refusals(page: Any) -> list[str]:
    """Console errors in which the browser refused something under the page's CSP."""
    refused: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", on_console)
    return refused


@pytest.mark.timeout(120)
async def test_the_demo_page_signs_in_and_shows_the_member(chromium: Path, demo: Sandbox) -> None:
    """Demo page → sign in → simulator's authorize page → callback → the page shows who."""
    from playwright.async_api import async_playwright  # noqa: PLC0415 -- after the probe

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            refused = _csp_refusals(page)
            await page.goto(demo.url("/demo/"))
            await page.locator("#sign-in").click()
            # Browsers carry the authorize link's #wechat_redirect across the redirects.
            await page.wait_for_url(re.compile(re.escape(demo.url("/demo/")) + r"(#.*)?$"))
            await page.locator("#signed-in").wait_for(state="visible", timeout=15_000)
            assert await page.locator("#corp-id").text_content() == DEFAULT_CORP
            assert await page.locator("#user-id").text_content() == DEFAULT_USER
            # The page also fetched and showed a signed config for its own URL.
            config = page.locator("#jssdk-config")
            # A locator wait, not wait_for_function: the page's CSP forbids eval, which
            # playwright's string predicates need.
            await page.locator("#jssdk-config", has_text="agentConfig").wait_for(timeout=15_000)
            assert DEFAULT_CORP in (await config.text_content() or "")
            status = await page.locator("#jssdk-status").text_content()
            assert status is not None
            assert "signed" in status
            # HttpOnly: the page's script cannot read the session cookie.
            assert "wecom_session" not in await page.evaluate("document.cookie")
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies["wecom_session"]["httpOnly"]
            assert cookies["wecom_session"]["sameSite"] == "Lax"
            await page.locator("#sign-out").click()
            await page.locator("#signed-out").wait_for(state="visible", timeout=15_000)
            assert refused == []
        finally:
            await browser.close()


@pytest.mark.timeout(120)
async def test_the_install_pages_in_a_browser(chromium: Path, demo: Sandbox) -> None:
    """/install → WeCom's (the simulator's) install page → /install/complete shows the outcome;
    a test install for the same member is then refused, in Chinese and English."""
    from playwright.async_api import async_playwright  # noqa: PLC0415 -- after the probe

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            refused = _csp_refusals(page)
            response = await page.goto(demo.url("/install"))
            assert response is not None
            assert response.status == 200
            assert page.url.startswith(demo.url("/install/complete?"))
            outcome = page.locator("main")
            assert await outcome.get_attribute("data-outcome") == "installed"
            assert "安装成功" in (await page.locator("h1").first.text_content() or "")
            response = await page.goto(demo.url("/install?test=1"))
            assert response is not None
            assert response.status == 403
            assert await outcome.get_attribute("data-outcome") == "refused:test_and_released"
            text = await page.locator("main").text_content() or ""
            assert "同一账号不能同时安装测试版和正式版" in text
            assert "cannot have both the test and the released app" in text
            assert refused == []
        finally:
            await browser.close()
