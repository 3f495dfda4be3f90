"""Failures are visible: a failed result is logged at warning (request id, corp, errcode,
reason, never the content), and any caller reads a request's latest result over
``rpc.notify`` (pending, unknown, or the result), on the in-process bus."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from notifier.service import NOTIFIER_TOPOLOGY, NotifierService
from notifier.settings import NotifierSettings
from shared.bus.abc import Message
from shared.bus.factory import BusComponent
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    NOTIFY_EXCHANGE,
    NOTIFY_REQUEST_KEY,
    RPC_AUTH_QUEUE,
    RPC_NOTIFY_QUEUE,
)
from shared.notify import NotifyResult
from shared.notify.client import PENDING, NotifyClient, NotifyUnavailable

SECRET = "TOP-SECRET-CONTENT"


async def _no_installation(_: Message) -> bytes:
    return json.dumps({"installation": None}).encode()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[InProcessBus, NotifierService]]:
    """The notifier on the in-process bus; rpc.auth knows no installation at all."""
    bus = InProcessBus(BASE_TOPOLOGY.merged(NOTIFIER_TOPOLOGY))
    component = BusComponent(bus)
    settings = NotifierSettings(
        wecom_api_base="http://127.0.0.1:9",
        data_dir=tmp_path,
        data_key=SecretStr(base64.b64encode(b"k" * 32).decode()),
    )
    notifier = NotifierService(settings, bus, component)
    await component.start()
    await component.connected()
    auth = await bus.serve(RPC_AUTH_QUEUE, _no_installation)
    await notifier.start()
    yield bus, notifier
    await notifier.stop()
    await auth.cancel(grace=1.0)
    await component.stop()


def _request(request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "corp_id": "wwnotinstalled",
        "to": {"users": ["alice"]},
        "message": {"msgtype": "text", "text": {"content": SECRET}},
    }


async def _result_of(client: NotifyClient, request_id: str) -> NotifyResult:
    async with asyncio.timeout(10):
        while True:
            found = await client.result(request_id)
            if isinstance(found, NotifyResult):
                return found
            await asyncio.sleep(0.02)


async def test_a_failed_result_is_logged_and_readable_over_rpc(
    service: tuple[InProcessBus, NotifierService],
) -> None:
    """A corp without the app installed: one warning naming request, corp and reason, no
    content; rpc.notify answers the stored result, and None for an id never seen."""
    bus, _ = service
    client = NotifyClient(bus)
    assert await client.result("never-seen") is None
    with capture_logs() as logs:
        body = json.dumps(_request("req-visible")).encode()
        await bus.publish(
            NOTIFY_EXCHANGE,
            NOTIFY_REQUEST_KEY,
            Message(body=body, message_id="req-visible", type="notify.request"),
        )
        result = await _result_of(client, "req-visible")
    assert result.status == "failed"
    assert result.errmsg is not None
    assert "not installed" in result.errmsg
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1
    [warning] = warnings
    assert warning["event"] == "notify_request_failed"
    assert warning["request_id"] == "req-visible"
    assert warning["corp_id"] == "wwnotinstalled"
    assert warning["reason"] == result.errmsg
    assert "errcode" in warning
    assert SECRET not in repr(logs)


async def test_a_claimed_request_is_pending(service: tuple[InProcessBus, NotifierService]) -> None:
    """A request the notifier works on (claimed, no result yet) answers pending."""
    bus, notifier = service
    assert notifier.handlers is not None
    repository = notifier.queries._repository  # type: ignore[union-attr]
    await repository.claim("req-busy", "someone", 60.0)
    assert await NotifyClient(bus).result("req-busy") == PENDING


async def test_a_malformed_query_is_an_error_reply(
    service: tuple[InProcessBus, NotifierService],
) -> None:
    """Anything but {"op": "result", "request_id"} is refused with an error body."""
    bus, _ = service
    reply = await bus.call(RPC_NOTIFY_QUEUE, b'{"op": "other"}', timeout=5)
    assert json.loads(reply.body)["error"]["code"] == "bad_request"
    with pytest.raises(NotifyUnavailable):
        await NotifyClient(bus).result("x" * 200)
