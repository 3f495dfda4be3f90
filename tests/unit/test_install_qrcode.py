"""The install QR code cache of GET /install/qrcode: one WeCom call for concurrent requests,
kept for its TTL then fetched afresh, and a refusal never cached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.web.install_qrcode import AppQrCodes
from shared.wecom.api import WeComApiError

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 64


class FakeTokens:
    def source(self, kind: str) -> Any:
        async def fetch(stale: str | None) -> str:
            return "suite-token"

        return fetch


class FakeWeCom:
    """get_app_qrcode answering a URL of ``image_url``, or refusing while ``refuse``."""

    def __init__(self, image_url: str) -> None:
        self.image_url = image_url
        self.calls: list[dict[str, Any]] = []
        self.refuse = False

    async def post(self, path: str, *, params: Any, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(body)
        await asyncio.sleep(0.01)  # long enough for concurrent callers to pile up
        if self.refuse:
            raise WeComApiError(48002, "api forbidden", path)
        return {"errcode": 0, "qrcode": self.image_url}


@pytest.fixture
async def image_server() -> AsyncIterator[TestServer]:
    async def image(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/qr.png", image)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_requests_fetch_once_and_the_ttl_refreshes(
    image_server: TestServer,
) -> None:
    """Five at once: one call; within the TTL: cached; after it: fetched again."""
    wecom, clock = FakeWeCom(str(image_server.make_url("/qr.png"))), Clock()
    codes = AppQrCodes(wecom, FakeTokens(), "suite", ttl_s=60, monotonic=clock)  # type: ignore[arg-type]
    try:
        images = await asyncio.gather(*(codes.png("spring") for _ in range(5)))
        assert set(images) == {PNG}
        assert wecom.calls == [{"suite_id": "suite", "state": "spring", "result_type": 2}]
        clock.now += 59
        await codes.png("spring")
        assert len(wecom.calls) == 1
        clock.now += 2
        await codes.png("spring")
        assert len(wecom.calls) == 2
        await codes.png("other")  # another state is another code
        assert len(wecom.calls) == 3
    finally:
        await codes.close()


async def test_a_refusal_is_not_cached(image_server: TestServer) -> None:
    """WeCom refusing (not released yet) raises; once released, the next request gets it."""
    wecom = FakeWeCom(str(image_server.make_url("/qr.png")))
    codes = AppQrCodes(wecom, FakeTokens(), "suite")  # type: ignore[arg-type]
    try:
        wecom.refuse = True
        with pytest.raises(WeComApiError):
            await codes.png()
        wecom.refuse = False
        assert await codes.png() == PNG
    finally:
        await codes.close()
