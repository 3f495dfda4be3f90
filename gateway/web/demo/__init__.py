"""The sandbox demo page at ``/demo/``: sign in, show the identity and the signed JS-SDK
configs, call ``wx.agentConfig`` when WeCom's JS-SDK is present. Sandbox mode only."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

PAGE: Final = Path(__file__).with_name("index.html")


def demo_routes() -> list[web.RouteDef]:
    """``GET /demo/`` (the page) and ``GET /demo`` (a redirect to it)."""
    body = PAGE.read_bytes()  # read once, at start-up

    async def page(_: web.Request) -> web.Response:
        return web.Response(
            body=body,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    async def to_page(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/demo/"})

    return [web.get("/demo/", page), web.get("/demo", to_page)]
