"""aiohttp's own protocol-layer log, as our HTTP server configures it: what a malformed request
carried (query strings with codes, cookies) never reaches a log line."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from shared.http import HttpServer


async def _send(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"GET /install/complete?auth_code=CODE-SECRET-1&state="
            + b"s" * 9000
            + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            id="over-long-request-line",
        ),
        pytest.param(
            b"GET /oauth/me HTTP/1.1\r\nHost: x\r\nCookie: session=CODE-SECRET-1"
            + b"c" * 9000
            + b"\r\n\r\n",
            id="over-long-cookie",
        ),
    ],
)
async def test_a_malformed_request_is_logged_without_its_bytes(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The log says a request was refused and why, at warning, and quotes none of it."""

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    server = HttpServer(app, "127.0.0.1", 0, name="test")
    await server.start()
    try:
        assert server.port is not None
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            answer = await _send(server.port, raw)
    finally:
        await server.stop()
    assert b" 400 " in answer.split(b"\r\n", 1)[0]
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, "aiohttp logged nothing for a malformed request"
    for record in records:
        text = caplog.text + record.getMessage()
        assert "CODE-SECRET-1" not in text
        assert record.exc_info is None
        assert record.levelno == logging.WARNING
        assert "LineTooLong" in record.getMessage()
