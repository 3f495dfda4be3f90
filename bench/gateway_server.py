"""The server side of the gateway benchmark, run as its own process.

``--mode full`` serves the real gateway (sandbox credentials, in-process bus, a consumer
that acks every event, as in the all-in-one process); ``--mode trivial`` serves an aiohttp
handler that only answers ``success``, the baseline the full path is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiohttp import web

from gateway.app import build_gateway_app
from gateway.settings import GatewaySettings
from shared.bus.abc import Delivery
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY, EVENTS_EXCHANGE, Binding, QueueSpec, Topology
from shared.http import HttpServer
from shared.lifecycle import run_components


class _BusWithConsumer:
    name = "bus"

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus

    async def start(self) -> None:
        await self.bus.start()

        async def ack(delivery: Delivery) -> None:
            await delivery.ack()

        await self.bus.consume("bench.events", ack, prefetch=256)

    async def stop(self) -> None:
        await self.bus.close()


async def serve(mode: str, port: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    if mode == "trivial":

        async def success(_: web.Request) -> web.Response:
            return web.Response(text="success")

        app = web.Application()
        app.router.add_post("/wecom/data", success)
        await run_components([HttpServer(app, "127.0.0.1", port, name="trivial")])
        return
    queue = QueueSpec("bench.events", bindings=(Binding(EVENTS_EXCHANGE, "#"),), dead_letter=False)
    bus = InProcessBus(BASE_TOPOLOGY.merged(Topology(exchanges=(), queues=(queue,))))
    app = build_gateway_app(GatewaySettings(log_level="warning"), bus)
    await run_components([_BusWithConsumer(bus), HttpServer(app, "127.0.0.1", port)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["full", "trivial"], required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.port))


if __name__ == "__main__":
    main()
