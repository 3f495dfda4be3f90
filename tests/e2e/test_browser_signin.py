"""Headless Chromium follows the sandbox sign-in from the demo page and sees the member.

The browser is Debian's ``/usr/bin/chromium`` driven by playwright; nothing downloads a
browser. Without it the test skips, or fails under ``REQUIRE_SERVICES=1``.

The sandbox loop needs auth_service, which is not built yet, so the services are composed in
the test (tests/support/oauth.py). To run it against ``wecom-suite run`` instead, replace the
``demo`` fixture: start ``tests.support.process.wecom_suite_run`` and yield its base URL (the
sandbox simulator then installs the default member on the authorize page by itself).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.oauth import DEFAULT_CORP, DEFAULT_USER, SignInRig, sign_in_rig

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"a browser is required (REQUIRE_SERVICES=1) but unavailable: {reason}")
    pytest.skip(reason=f"{reason}; install Debian's chromium, or set REQUIRE_SERVICES=1 to fail")


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    try:
        import playwright.async_api  # noqa: F401, PLC0415 -- only to probe that it is installed
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[SignInRig]:
    """The gateway's demo page with the member installed and granted."""
    async with sign_in_rig(tmp_path) as rig:
        await rig.install()
        yield rig


@pytest.mark.timeout(120)
async def test_the_demo_page_signs_in_and_shows_the_member(chromium: Path, demo: SignInRig) -> None:
    """Demo page → sign in → simulator's authorize page → callback → the page shows who."""
    from playwright.async_api import async_playwright  # noqa: PLC0415 -- after the probe

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            await page.goto(demo.url("/demo/"))
            await page.locator("#sign-in").click()
            # Browsers carry the authorize link's #wechat_redirect across the redirects.
            await page.wait_for_url(re.compile(re.escape(demo.url("/demo/")) + r"(#.*)?$"))
            await page.locator("#signed-in").wait_for(state="visible", timeout=15_000)
            assert await page.locator("#corp-id").text_content() == DEFAULT_CORP
            assert await page.locator("#user-id").text_content() == DEFAULT_USER
            # The page also fetched and showed a signed config for its own URL.
            config = page.locator("#jssdk-config")
            await page.wait_for_function(
                "document.getElementById('jssdk-config').textContent.includes('agentConfig')"
            )
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
        finally:
            await browser.close()
