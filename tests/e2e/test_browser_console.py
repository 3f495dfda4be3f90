"""Headless Chromium against ``wecom-suite run`` in sandbox mode: the developer console's
sign-in, each page (a screenshot of each), the test/released move, and no console errors.

Debian's ``/usr/bin/chromium`` driven by playwright, as in test_browser_signin; without it the
test skips, or fails under ``REQUIRE_SERVICES=1``. One set of screenshots is also copied to
``/tmp/console-shots/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulator.settings import SANDBOX_DEFAULT_CORP as DEFAULT_CORP
from simulator.settings import SANDBOX_DEFAULT_USER as DEFAULT_USER
from tests.support.process import wecom_suite_run

SHOTS = Path("/tmp/console-shots")  # noqa: S108 -- a fixed place the lead can open

pytestmark = pytest.mark.browser


def _console_errors(page: Any) -> list[str]:
    """Every console error and uncaught page error (CSP refusals are console errors)."""
    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


async def _notify(base: str, key: str, request_id: str, corp_id: str) -> str:
    """Send a text over the internal API and wait for its final status."""
    request = {
        "id": request_id,
        "corp_id": corp_id,
        "to": {"users": [DEFAULT_USER]},
        "message": {"msgtype": "text", "text": {"content": "console-content-marker-7f3a"}},
    }
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base}/api/v1/notifications", json=request) as response:
            assert response.status == 202
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            async with session.get(f"{base}/api/v1/notifications/{request_id}") as response:
                answer = await response.json()
            if response.status == 200 and answer.get("status") != "pending":
                return str(answer["status"])
            assert asyncio.get_running_loop().time() < deadline, answer
            await asyncio.sleep(0.2)


@pytest.mark.timeout(180)
async def test_the_console_in_a_browser(chromium: Path, tmp_path: Path) -> None:
    """Sign in with the key file's key, open each page on a phone-sized screen, move the
    installation to test and back, sign out; no console error on the way."""
    from playwright.async_api import async_playwright  # noqa: PLC0415 -- after the probe

    data_dir = tmp_path / "data"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    env = {"DATA_DIR": str(data_dir), "SIM_LIMITS": "off"}
    with wecom_suite_run(env=env) as (_, base):
        key = (data_dir / "internal-api.key").read_text().strip()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=["--no-sandbox"]
            )
            try:
                context = await browser.new_context(viewport={"width": 412, "height": 915})
                page = await context.new_page()
                errors = _console_errors(page)
                # An installation to look at: the sandbox installs the default corp.
                await page.goto(base + "/install")
                assert await page.locator("main").get_attribute("data-outcome") == "installed"
                assert await _notify(base, key, "console-sent", DEFAULT_CORP) == "sent"
                assert await _notify(base, key, "console-failed", "wwnotinstalled") == "failed"

                await page.goto(base + "/")
                assert page.url == base + "/console"
                main = page.locator("main")
                assert await main.get_attribute("data-page") == "sign_in"
                await page.screenshot(path=str(shots / "0-sign-in.png"), full_page=True)
                await page.fill("#key", "not-the-key")
                await page.click("#sign-in")
                assert await page.locator("#refused").is_visible()
                errors.clear()  # the 401 answer is logged by Chromium as a failed resource
                await page.fill("#key", key)
                async with page.expect_navigation():
                    await page.click("#sign-in")
                assert await main.get_attribute("data-page") == "overview"
                cookies = {c["name"]: c for c in await context.cookies()}
                assert cookies["wecom_console"]["httpOnly"]
                assert cookies["wecom_console"]["sameSite"] == "Strict"
                await page.locator("#gauge-corps").wait_for()
                assert await page.locator("#gauge-corps .used").text_content() == "1"
                assert await page.locator("#installs-active .big").text_content() == "1"
                assert await page.locator("#ticket").get_attribute("data-colour") == "green"
                assert await page.locator("#dead-letters tr[data-queue]").count() >= 3
                assert await page.locator("#notify-sent .big").text_content() == "1"
                assert await page.locator("#notify-failed .big").text_content() == "1"
                await page.screenshot(path=str(shots / "1-overview.png"), full_page=True)

                await page.click("#nav-installations")
                row = page.locator(f"#corp-{DEFAULT_CORP}")
                assert await row.get_attribute("data-test") == "0"
                await page.screenshot(path=str(shots / "2-installations.png"), full_page=True)
                await row.locator("button.move").click()
                await page.locator("#moved").wait_for()
                assert await row.get_attribute("data-test") == "1"
                await page.screenshot(path=str(shots / "3-installations-moved.png"), full_page=True)
                await row.locator("button.move").click()
                await page.locator("#moved").wait_for()
                assert await row.get_attribute("data-test") == "0"

                await page.click("#nav-notifications")
                assert await main.get_attribute("data-page") == "notifications"
                assert await page.locator("tr.result").count() == 2
                assert "console-content-marker-7f3a" not in (await main.text_content() or "")
                await page.select_option("#status", "failed")
                await page.click("#apply")
                assert "status=failed" in page.url
                failed = page.locator("tr.result")
                assert await failed.count() == 1
                assert "wwnotinstalled" in (await failed.text_content() or "")
                await page.screenshot(path=str(shots / "4-notifications.png"), full_page=True)

                await page.click("#sign-out")
                assert await main.get_attribute("data-page") == "sign_in"
                assert errors == []
            finally:
                await browser.close()
    _keep(shots)


def _keep(shots: Path) -> None:
    """A copy of the screenshots where the lead looks for them."""
    SHOTS.mkdir(exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy(shot, SHOTS / shot.name)
    assert len(list(SHOTS.glob("*.png"))) >= 5
