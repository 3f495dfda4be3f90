"""RPC over the bus, the parts both implementations share: building a request, matching replies
to waiting callers by ``correlation_id``, and the server wrapper that turns a handler's result
or error into a reply.

A server acks a request once it has answered, even with an error reply: a failed request is
the caller's to handle, not a poison message for ``.dead``, and the caller must not sit out
its timeout.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

import structlog

from shared.bus.abc import BusError, Delivery, Handler, Message, RpcHandler, RpcTimeout
from shared.bus.topology import DEFAULT_EXCHANGE
from shared.errors import ServiceError

log = structlog.get_logger(__name__)

REQUEST_TYPE = "rpc.request"
REPLY_TYPE = "rpc.reply"
ERROR_TYPE = "rpc.error"
_REPLY_TIMEOUT = 5.0  # confirm wait for a reply

Publish = Callable[[str, str, Message], Awaitable[None]]


def request_message(request: bytes | Message, reply_to: str) -> Message:
    """The request as sent: a fresh ``correlation_id`` per call, and where to reply."""
    correlation_id = uuid.uuid4().hex
    if isinstance(request, bytes):
        return Message(
            body=request,
            message_id=correlation_id,
            type=REQUEST_TYPE,
            correlation_id=correlation_id,
            reply_to=reply_to,
        )
    return replace(request, correlation_id=correlation_id, reply_to=reply_to)


class PendingCalls:
    """Callers waiting for replies, keyed by ``correlation_id``."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[Message]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def expect(self, correlation_id: str) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[correlation_id] = future
        return future

    async def call(
        self,
        request: bytes | Message,
        reply_to: str,
        send: Callable[[Message], Awaitable[None]],
        queue: str,
        deadline: float,
    ) -> Message:
        """Send ``request`` through ``send`` (with a fresh ``correlation_id`` and ``reply_to``)
        and wait for its reply until ``deadline`` (the event loop's clock).

        Raises:
            RpcTimeout: no reply by ``deadline``.
            BusError: whatever ``send`` raised (nothing waits for a reply then).
        """
        sent = request_message(request, reply_to)
        correlation_id = sent.correlation_id or ""
        future = self.expect(correlation_id)
        try:
            await send(sent)
        except BaseException:
            future.cancel()
            self.forget(correlation_id)
            raise
        remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
        return await self.wait(correlation_id, future, queue, remaining)

    def forget(self, correlation_id: str) -> None:
        """Forget a call whose request could not be sent."""
        self._waiting.pop(correlation_id, None)

    def resolve(self, reply: Message) -> None:
        """Hand ``reply`` to its caller; a reply nobody waits for (any more) is dropped."""
        future = self._waiting.pop(reply.correlation_id or "", None)
        if future is None or future.done():
            # The caller timed out, or another bus instance owns the call: nothing to do.
            log.info("rpc_reply_dropped", correlation_id=reply.correlation_id)
            return
        future.set_result(reply)

    async def wait(
        self, correlation_id: str, future: asyncio.Future[Message], queue: str, timeout: float
    ) -> Message:
        """The reply, or ``RpcTimeout`` after ``timeout`` seconds.

        Raises:
            RpcTimeout: no reply in time.
        """
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise RpcTimeout(f"no reply from {queue!r} within {timeout} s") from exc
        finally:
            self._waiting.pop(correlation_id, None)

    def fail_all(self, error: BusError) -> None:
        """Wake every waiting caller with ``error`` (the bus is closing)."""
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)


def error_body(exc: Exception) -> bytes:
    """The error reply of a failed handler: a ``ServiceError`` says what it is, anything else
    stays opaque (its message may carry internals)."""
    if isinstance(exc, ServiceError):
        return json.dumps(exc.to_json()).encode()
    payload = {"error": {"code": "internal_error", "message": "the server failed"}}
    return json.dumps(payload).encode()


def server_handler(queue: str, handler: RpcHandler, publish: Publish) -> Handler:
    """A consumer handler that answers each request with ``handler``'s result or error."""

    async def answer(delivery: Delivery) -> None:
        request = delivery.message
        try:
            body, kind = await handler(request), REPLY_TYPE
        except Exception as exc:  # every failure becomes an error reply, as the contract says
            log.warning(
                "rpc_handler_failed",
                queue=queue,
                correlation_id=request.correlation_id,
                error_type=type(exc).__name__,
                error_code=exc.code if isinstance(exc, ServiceError) else None,
            )
            body, kind = error_body(exc), ERROR_TYPE
        if not request.reply_to:
            log.warning("rpc_request_without_reply_to", queue=queue, message_id=request.message_id)
            return
        reply = Message(
            body=body,
            message_id=uuid.uuid4().hex,
            type=kind,
            correlation_id=request.correlation_id,
        )
        try:
            await publish(DEFAULT_EXCHANGE, request.reply_to, reply)
        except BusError as exc:
            # The caller is gone (its reply queue with it) or the broker is: either way it
            # times out; retrying the request would only answer nobody again.
            log.warning(
                "rpc_reply_failed",
                queue=queue,
                correlation_id=request.correlation_id,
                error_code=exc.code,
            )

    return answer
