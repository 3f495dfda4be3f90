"""Slow and greedy clients against the gateway's real HTTP server: trickled headers and bodies
are cut off within their timeouts, connections are capped, and callbacks keep being answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from gateway.app import build_gateway_app
from gateway.settings import GatewaySettings
from shared.bus.inprocess import InProcessBus
from shared.http import HttpServer
from shared.wecom.crypto import CallbackCipher
from shared.wecom.sealing import seal_callback
from tests.support.gateway import capture_topology

TICKET = Path(__file__).parents[1] / "fixtures" / "callbacks" / "command_suite_ticket.xml"


@asynccontextmanager
async def gateway(**values: object) -> AsyncIterator[tuple[GatewaySettings, int]]:
    settings = GatewaySettings(**values)  # type: ignore[arg-type]
    bus = InProcessBus(capture_topology())
    await bus.start()
    server = HttpServer(
        build_gateway_app(settings, bus),
        "127.0.0.1",
        0,
        header_timeout_s=settings.http_header_timeout_s,
        max_connections=settings.http_max_connections,
    )
    await server.start()
    try:
        assert server.port is not None
        yield settings, server.port
    finally:
        await server.stop()
        await bus.close()


async def post_callback(settings: GatewaySettings, port: int) -> tuple[int, str]:
    cipher = CallbackCipher(settings.encoding_aes_key.get_secret_value())
    sealed = seal_callback(
        cipher,
        settings.callback_token.get_secret_value(),
        TICKET.read_bytes(),
        "",
        timestamp=int(time.time()),
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/wecom/command", params=sealed.query, data=sealed.body
        ) as response,
    ):
        return response.status, await response.text()


async def trickle(port: int, head: bytes, *, interval_s: float, limit_s: float) -> float:
    """Send ``head`` a byte at a time; seconds until the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        for byte in head:
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                break
            try:
                data = await asyncio.wait_for(reader.read(65536), interval_s)
            except TimeoutError:
                if time.monotonic() - started > limit_s:
                    pytest.fail(f"still open after {limit_s} s")
                continue
            if not data or b"\r\n\r\n" in data:
                break
        else:
            pytest.fail("the whole request was trickled in without the server closing")
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


@pytest.mark.timeout(60)
async def test_a_client_trickling_its_headers_is_closed_and_callbacks_still_pass() -> None:
    """Slowloris: headers at a few bytes a second are cut off after the header timeout, while
    a real callback sent meanwhile is answered at once."""
    async with gateway(http_header_timeout_s=1.5) as (settings, port):
        head = b"POST /wecom/command?msg_signature=x HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 40
        slow = asyncio.create_task(trickle(port, head, interval_s=0.25, limit_s=6))
        await asyncio.sleep(0.5)
        assert await post_callback(settings, port) == (200, "success")
        closed_after = await slow
        assert 1.0 <= closed_after <= 4.0


@pytest.mark.timeout(60)
async def test_a_client_trickling_its_body_gets_408() -> None:
    """A body trickled in slower than the body timeout allows is refused with 408."""
    async with gateway(http_body_timeout_s=1.0) as (_, port):
        head = (
            b"POST /wecom/command?msg_signature=a&timestamp=1&nonce=n HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head)
            started = time.monotonic()
            answer = b""
            for _ in range(40):
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.read(65536), 0.25)
                except TimeoutError:
                    continue
                break
            elapsed = time.monotonic() - started
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
        assert b"request_timeout" in answer
        assert 0.9 <= elapsed <= 3.0


@pytest.mark.timeout(60)
async def test_connections_over_the_cap_get_503_and_callbacks_resume_after() -> None:
    """Past the connection cap a new connection is told 503 at once; once idle ones go,
    callbacks are served again."""
    async with gateway(http_max_connections=3, http_header_timeout_s=30) as (settings, port):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503")
        for _, idle_writer in idle:
            idle_writer.close()
            await idle_writer.wait_closed()
        await asyncio.sleep(0.1)
        assert await post_callback(settings, port) == (200, "success")
