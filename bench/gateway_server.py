"""The server side of the gateway benchmark, run as its own process.

Modes, from nothing to everything:

- ``trivial``: an aiohttp handler that only answers ``success`` (the baseline);
- ``read``: also reads the body;
- ``process``: also authenticates, decrypts, parses and normalises the callback into its
  envelope (``CallbackProcessor.process``, batched per loop turn as the gateway does), then
  answers without publishing;
- ``full``: the real gateway exactly as ``wecom-suite run`` builds it today (sandbox
  credentials, in-process bus, base topology: with no consumer bound yet, events land in the
  bounded ``wecom.events.unrouted`` queue, so the numbers are the gateway's own cost, not a
  consumer's);
- ``skip-process``: ``full`` with ``CallbackProcessor.process`` replaced by a stand-in that
  costs almost nothing (one prebuilt event per distinct signature): everything the gateway
  does except verify, decrypt, parse and normalise. Its throughput is the ceiling that no
  speed-up of ``process()`` can pass;
- ``rabbitmq``: the same gateway on the RabbitMQ bus at ``AMQP_URL`` (from the environment),
  as a standalone gateway runs it: every callback waits for a broker confirm;
- ``peer``: not ours: the handler a Python developer would write with aiohttp, wechatpy and
  aio-pika (``bench/peer_wechatpy.py``), on the same broker, also confirming every publish.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any
from unittest import mock

from aiohttp import web

import gateway.app
from bench.gateway import benchmark_message
from gateway.app import build_gateway_app
from gateway.callbacks.batching import CallbackBatcher
from gateway.callbacks.processor import (
    AcceptedCallback,
    CallbackParams,
    CallbackProcessor,
    ReceiveIdPolicy,
)
from gateway.settings import GatewaySettings
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY
from shared.http import HttpServer
from shared.lifecycle import run_components
from shared.logging import configure_logging
from shared.wecom.crypto import CallbackCipher
from shared.wecom.events import Route
from shared.wecom.sealing import seal_callback

MODES = ("trivial", "read", "process", "full", "skip-process", "rabbitmq", "peer")


def _baseline_app(mode: str, settings: GatewaySettings) -> web.Application:
    processor = CallbackProcessor(
        token=settings.callback_token.get_secret_value(),
        cipher=CallbackCipher(settings.encoding_aes_key.get_secret_value()),
        policy=ReceiveIdPolicy.from_setting(
            None, suite_id=settings.suite_id, provider_corp_id=None
        ),
        suite_id=settings.suite_id,
        timestamp_window_s=settings.callback_timestamp_window_s,
        max_body_bytes=settings.callback_max_body_bytes,
    )

    async def trivial(_: web.Request) -> web.Response:
        return web.Response(text="success")

    async def read(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="success")

    batcher = CallbackBatcher(processor.process)

    async def process(request: web.Request) -> web.Response:
        body = await request.read()
        params = CallbackParams.from_query(request.query)
        await batcher.process("data", params, body, now=time.time())
        return web.Response(text="success")

    app = web.Application()
    app.router.add_post("/wecom/data", {"trivial": trivial, "read": read, "process": process}[mode])
    return app


async def serve(mode: str, port: int) -> None:
    configure_logging("warning", "json", service="bench", version="0")
    settings = GatewaySettings(log_level="warning")
    if mode == "rabbitmq":
        await _serve_rabbitmq(settings, port)
        return
    if mode == "peer":
        from bench.peer_wechatpy import build_peer_app  # noqa: PLC0415 -- bench-only deps

        app = build_peer_app(settings, os.environ["AMQP_URL"])
        await run_components([HttpServer(app, "127.0.0.1", port, name="peer")])
        return
    if mode not in ("full", "skip-process"):
        app = _baseline_app(mode, settings)
        await run_components([HttpServer(app, "127.0.0.1", port, name=mode)])
        return
    bus = InProcessBus(BASE_TOPOLOGY)
    if mode == "skip-process":
        with mock.patch.object(gateway.app, "CallbackProcessor", _SkippedProcessing):
            app = build_gateway_app(settings, bus)
    else:
        app = build_gateway_app(settings, bus)
    await run_components([BusComponent(bus), HttpServer(app, "127.0.0.1", port)])


class _SkippedProcessing(CallbackProcessor):
    """A processor whose ``process()`` costs next to nothing: the event of one real callback,
    processed once, under the request's signature (distinct per callback) as its id and
    replay key, so the publisher and the bus see distinct events of the usual size, as in
    ``full``. Nothing is verified: a benchmark instrument only."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        now = int(time.time())
        sealed = seal_callback(
            self._cipher, self._token, benchmark_message(0, now), "", timestamp=now, nonce="0"
        )
        params = CallbackParams.from_query(sealed.query)
        self._template = super().process("data", params, sealed.body, now=now)

    def process(
        self, route: Route, params: CallbackParams, body: bytes, *, now: float
    ) -> AcceptedCallback:
        return self._template._replace(
            event_id=params.signature, dedup_key=params.signature.encode()
        )


async def _serve_rabbitmq(settings: GatewaySettings, port: int) -> None:
    # The URL comes from the environment, as for a real gateway, so no password is on the
    # command line; the gateway reports not ready on /readyz until the bus has connected.
    bus = RabbitMQBus(
        os.environ["AMQP_URL"], BASE_TOPOLOGY, connection_name="bench-gateway", start_timeout=0.0
    )
    app = build_gateway_app(settings, bus)
    await run_components([BusComponent(bus), HttpServer(app, "127.0.0.1", port)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.port))


if __name__ == "__main__":
    main()
