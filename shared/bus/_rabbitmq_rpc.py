"""The calling half of RPC on RabbitMQ: one exclusive reply queue per bus.

Replies go to a classic, non-durable, exclusive, auto-delete queue named ``rpc.reply.<uuid>``
that lives as long as the bus's connection (direct reply-to would save the queue, but it ties
each request to the channel that consumes the pseudo-queue, which the robust channel does not
restore as such). The queue is declared on the first call, on a robust channel that redeclares
it and resubscribes after a reconnect; calls waiting across a reconnect time out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection

from shared.bus._broker_errors import BROKER_AWAY, CHANNEL_OPEN_ERRORS, is_broker_away
from shared.bus._rabbitmq_delivery import message_from_amqp
from shared.bus._rpc import PendingCalls
from shared.bus.abc import BusError, Message

log = structlog.get_logger(__name__)

# Publishes a request to ``queue`` through the default exchange, waiting ``timeout`` seconds
# at most for its confirm (provided by the bus, which owns the publishing channel).
SendRequest = Callable[[str, Message, float], Awaitable[None]]


class ReplyQueue:
    """Sends requests and hands each reply to the call that waits for it."""

    def __init__(self, send: SendRequest, open_timeout: float) -> None:
        self._send = send
        self._open_timeout = open_timeout
        self._name = f"rpc.reply.{uuid.uuid4().hex}"
        self._pending = PendingCalls()
        self._channel: AbstractRobustChannel | None = None
        self._lock = asyncio.Lock()

    async def call(
        self,
        connection: AbstractRobustConnection,
        queue: str,
        request: bytes | Message,
        timeout: float,
    ) -> Message:
        """Send ``request`` to ``queue`` and wait at most ``timeout`` seconds in all.

        Raises:
            RpcTimeout: no reply in time.
            Unroutable: ``queue`` does not exist.
            BusError: the reply queue or the request could not be set up.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        await self._open(connection)

        async def send(sent: Message) -> None:
            await self._send(queue, sent, timeout)

        return await self._pending.call(request, self._name, send, queue, deadline)

    async def _open(self, connection: AbstractRobustConnection) -> None:
        async with self._lock:
            if self._channel is not None and not self._channel.is_closed:
                return
            channel = connection.channel(publisher_confirms=False)
            try:
                await asyncio.wait_for(channel.initialize(), self._open_timeout)
                queue = await asyncio.wait_for(
                    channel.declare_queue(
                        self._name, durable=False, exclusive=True, auto_delete=True
                    ),
                    self._open_timeout,
                )
                # No ack: a reply is worth nothing once its caller is gone.
                await asyncio.wait_for(
                    queue.consume(self._on_reply, no_ack=True), self._open_timeout
                )
            except CHANNEL_OPEN_ERRORS as exc:
                if channel.is_initialized and not channel.is_closed:
                    await channel.close()
                if not is_broker_away(exc, connection):
                    raise
                raise BusError(f"cannot open the RPC reply queue: {type(exc).__name__}") from exc
            self._channel = channel

    async def _on_reply(self, incoming: AbstractIncomingMessage) -> None:
        self._pending.resolve(message_from_amqp(incoming))

    async def close(self) -> None:
        """Fail the calls still waiting and close the reply channel (deleting the queue)."""
        self._pending.fail_all(BusError("the RabbitMQ bus closed before the reply came"))
        channel, self._channel = self._channel, None
        if channel is None or channel.is_closed:
            return
        try:
            await asyncio.wait_for(channel.close(), self._open_timeout)
        except BROKER_AWAY as exc:
            log.warning("rpc_reply_channel_close_failed", error_type=type(exc).__name__)
