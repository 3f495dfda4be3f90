"""The server side of the gateway benchmark, run as its own process.

``--mode full`` serves the real gateway exactly as ``wecom-suite run`` builds it today
(sandbox credentials, in-process bus, base topology: with no consumer bound yet, events land
in the bounded ``wecom.events.unrouted`` queue, so the numbers are the gateway's own cost,
not a consumer's); ``--mode trivial`` serves an aiohttp
handler that only answers ``success``, the baseline the full path is compared with.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from gateway.app import build_gateway_app
from gateway.settings import GatewaySettings
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY
from shared.http import HttpServer
from shared.lifecycle import run_components
from shared.logging import configure_logging


async def serve(mode: str, port: int) -> None:
    configure_logging("warning", "json", service="bench", version="0")
    if mode == "trivial":

        async def success(_: web.Request) -> web.Response:
            return web.Response(text="success")

        app = web.Application()
        app.router.add_post("/wecom/data", success)
        await run_components([HttpServer(app, "127.0.0.1", port, name="trivial")])
        return
    bus = InProcessBus(BASE_TOPOLOGY)
    app = build_gateway_app(GatewaySettings(log_level="warning"), bus)
    await run_components([BusComponent(bus), HttpServer(app, "127.0.0.1", port)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["full", "trivial"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.port))


if __name__ == "__main__":
    main()
