"""``wecom-suite notify --corp ID --user U --text T``: publish one notification request on the
bus at ``AMQP_URL`` and, if asked, wait for its ``notify.result``.

Without ``AMQP_URL`` (a ``wecom-suite run`` on its in-process bus, e.g. in sandbox mode) the
request goes through the gateway's internal API instead, ``POST /api/v1/notifications`` at
``PUBLIC_BASE_URL``, with ``INTERNAL_API_KEY`` or the sandbox key in ``DATA_DIR``, and the
result is read with ``GET /api/v1/notifications/{id}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.bus.abc import BusError, Message
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import BASE_TOPOLOGY, EVENTS_EXCHANGE, NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY
from shared.contracts import event_types
from shared.errors import ConfigurationError
from shared.notify import NotifyRequestInvalid, NotifyResult, parse_notify_request
from shared.storage.crypto import load_internal_api_key

# How often `--wait` asks the gateway for the result.
_POLL_S: Final = 0.2


def notify_command(corp: str, user: str, text: str, *, wait_s: float = 0.0) -> int:
    """Publish a text notification to ``user`` of ``corp``; print the request id as JSON.

    With ``wait_s`` > 0, also wait that long for the result and print it.

    Returns:
        The exit status: 0 published (and, when waiting, sent); 1 the result was partial,
        failed or expired, none came in time, or the gateway was unreachable; 2 a bad
        request or configuration.
    """
    amqp_url = os.environ.get("AMQP_URL", "").strip()
    body = {
        "id": f"cli-{uuid.uuid4().hex}",
        "corp_id": corp,
        "to": {"users": [user]},
        "message": {"msgtype": "text", "text": {"content": text}},
    }
    try:
        parse_notify_request(body)
    except NotifyRequestInvalid as exc:
        print(f"invalid request: {exc.message}", file=sys.stderr)
        return 2
    if not amqp_url:
        return _notify_via_gateway(body, wait_s)
    try:
        return asyncio.run(_notify(amqp_url, body, wait_s))
    except BusError as exc:
        print(f"bus error: {exc.message}", file=sys.stderr)
        return 1


def _notify_via_gateway(body: dict[str, Any], wait_s: float) -> int:
    """``POST /api/v1/notifications`` on the local gateway, then with ``wait_s`` poll
    ``GET /api/v1/notifications/{id}`` for the result; the exit status."""
    settings = _GatewayClientSettings()
    try:
        key = load_internal_api_key(
            settings.internal_api_key, settings.data_dir, sandbox=settings.wecom_suite_id is None
        )
    except ConfigurationError as exc:
        print(f"configuration error: {exc.message}", file=sys.stderr)
        return 2
    url = settings.public_base_url.rstrip("/") + "/api/v1/notifications"
    try:
        _status, answer = _call(url, key, body)
    except urllib.error.HTTPError as exc:
        print(f"the gateway answered {exc.code}: {exc.read().decode()[:500]}", file=sys.stderr)
        return 2 if exc.code == 400 else 1
    except OSError as exc:
        print(f"cannot reach the gateway at {url}: {exc}", file=sys.stderr)
        return 1
    print(answer)
    if wait_s <= 0:
        return 0
    return _poll_result(f"{url}/{urllib.parse.quote(body['id'], safe='')}", key, wait_s)


def _call(url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    """One JSON call to the gateway: (status, body text); HTTPError for 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 -- the operator's own gateway URL
        url,
        data=data,
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
        return response.status, response.read().decode()


def _poll_result(url: str, key: str, wait_s: float) -> int:
    """Read the result until it is final or ``wait_s`` passed. A 404 only means the notifier
    has not picked the request up yet: the command has just had it accepted."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _status, text = _call(url, key)
            answer = json.loads(text)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                print(
                    f"the gateway answered {exc.code}: {exc.read().decode()[:500]}", file=sys.stderr
                )
                return 1
            answer = {"status": "pending"}
        except (OSError, ValueError) as exc:
            print(f"cannot read the result at {url}: {exc}", file=sys.stderr)
            return 1
        if isinstance(answer, dict) and answer.get("status") not in (None, "pending"):
            result = NotifyResult.model_validate(answer)
            print(result.model_dump_json())
            return 0 if result.status == "sent" else 1
        if time.monotonic() >= deadline:
            print(f"no result within {wait_s:g} s", file=sys.stderr)
            return 1
        time.sleep(_POLL_S)


class _GatewayClientSettings(BaseSettings):
    """Where the local gateway is and its internal API key (the service's own names)."""

    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    public_base_url: str = "http://127.0.0.1:8080"
    internal_api_key: SecretStr | None = None
    data_dir: Path = Path("data")
    wecom_suite_id: str | None = None


async def _notify(amqp_url: str, body: dict[str, Any], wait_s: float) -> int:
    request_id: str = body["id"]
    async with contextlib.AsyncExitStack() as stack:
        # Starting the bus declares wecom.events, which the listener binds to.
        bus = RabbitMQBus(amqp_url, BASE_TOPOLOGY, connection_name="wecom-suite-notify")
        await bus.start()
        stack.push_async_callback(bus.close)
        results: asyncio.Queue[NotifyResult] | None = None
        if wait_s > 0:
            # Listen before publishing, so that even a very quick result is not missed.
            results = await stack.enter_async_context(_listen(amqp_url))
        message = Message(
            body=json.dumps(body).encode(), message_id=request_id, type=event_types.NOTIFY_REQUEST
        )
        await bus.publish(NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY, message)
        print(json.dumps({"id": request_id}))
        if results is None:
            return 0
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    result = await results.get()
                    if result.request_id == request_id:
                        break
        except TimeoutError:
            print(f"no result within {wait_s:g} s", file=sys.stderr)
            return 1
        print(result.model_dump_json())
        return 0 if result.status == "sent" else 1


@contextlib.asynccontextmanager
async def _listen(amqp_url: str) -> AsyncIterator[asyncio.Queue[NotifyResult]]:
    """Results from an exclusive, self-deleting queue bound to wecom.events/notify.result
    (a one-off listener the shared topology has no place for)."""
    found: asyncio.Queue[NotifyResult] = asyncio.Queue()
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, passive=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, event_types.NOTIFY_RESULT)

        async def on_message(incoming: AbstractIncomingMessage) -> None:
            async with incoming.process():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    payload = json.loads(incoming.body)["payload"]
                    found.put_nowait(NotifyResult.model_validate(payload))

        await queue.consume(on_message)
        yield found
    finally:
        await connection.close()
