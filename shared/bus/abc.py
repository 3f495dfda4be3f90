"""The bus interface every service codes against.

Implementations: ``shared.bus.inprocess.InProcessBus`` (all-in-one process and tests) and the
RabbitMQ bus (``AMQP_URL``). Both give the same guarantees: ``publish`` returns only once the
message is stored in every queue it routes to (a broker confirm), and a consumer's message
stays unacknowledged -- and is redelivered if the consumer goes away -- until it is acked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Protocol

from shared.errors import Conflict, InvalidRequest, ServiceError, Unavailable

HeaderValue = str | int | float | bool | None

# The delivery attempt a message is on (1 when absent): set on each delayed retry.
ATTEMPT_HEADER = "x-attempt"


@dataclass(frozen=True, slots=True)
class Message:
    """One message as published and as delivered (AMQP basic properties plus body)."""

    body: bytes
    message_id: str
    type: str
    content_type: str = "application/json"
    headers: Mapping[str, HeaderValue] = field(default_factory=dict)
    correlation_id: str | None = None
    reply_to: str | None = None
    timestamp: datetime | None = None


class BusError(Unavailable):
    """The bus could not take or confirm a message: a retryable failure for the publisher."""

    code = "bus_unavailable"
    reason = "the message bus is unavailable"


class PublishTimeout(BusError):
    code = "bus_publish_timeout"
    reason = "the message bus did not confirm the message in time"


class PublishRejected(BusError):
    """The broker nacked the message (e.g. a bounded queue is full); nothing was stored."""

    code = "bus_publish_rejected"
    reason = "the message bus rejected the message"


class Unroutable(BusError):
    """No queue is bound for the routing key and the exchange has no alternate exchange."""

    code = "bus_unroutable"
    reason = "no queue is bound for the message"


class RetryLater(ServiceError):
    """Raised by a handler that wants its message again later (a delayed retry)."""

    code = "retry_later"
    status = 503
    retryable = True
    reason = "try the message again later"


class RpcTimeout(BusError):
    """No reply came within the call's timeout (no server, or the server was too slow)."""

    code = "bus_rpc_timeout"
    reason = "no reply to the call in time"


def attempt_of(message: Message) -> int:
    """Which delivery attempt ``message`` is on: 1 the first time, 2 after one retry, …"""
    value = message.headers.get(ATTEMPT_HEADER)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


class TopologyError(InvalidRequest):
    """An exchange or queue was used that the topology does not declare."""

    code = "bus_topology_error"
    reason = "unknown exchange or queue"


class AlreadySettled(Conflict):
    """A delivery was acked or nacked after it had been settled (by the handler, or by the bus
    requeueing it when its consumer stopped). Settling twice is a handler bug."""

    code = "bus_already_settled"
    reason = "the delivery was already acked or nacked"


class Delivery(Protocol):
    """A message handed to a consumer; settle it exactly once with ``ack`` or ``nack``."""

    @property
    def message(self) -> Message: ...

    @property
    def exchange(self) -> str: ...

    @property
    def routing_key(self) -> str: ...

    @property
    def redelivered(self) -> bool: ...

    @property
    def is_settled(self) -> bool: ...

    async def ack(self) -> None:
        """Done with the message: remove it from the queue."""

    async def nack(self, *, requeue: bool) -> None:
        """Give the message back (``requeue=True``) or dead-letter it (``requeue=False``)."""

    def process(self) -> DeliveryProcess:
        """Context manager: ack on normal exit; retry or dead-letter on an exception."""


class DeliveryProcess(Protocol):
    async def __aenter__(self) -> Delivery: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


Handler = Callable[[Delivery], Awaitable[None]]
# An RPC server's handler: the request in, the reply body out. A raised error becomes an
# error reply ``{"error": {"code", "message"}}``.
RpcHandler = Callable[[Message], Awaitable[bytes]]


class Consumer(Protocol):
    """A running subscription to one queue."""

    async def cancel(self, *, grace: float = 10.0) -> None:
        """Stop taking messages; let in-flight handlers finish for ``grace`` seconds, then
        requeue what is still unsettled."""


class Bus(Protocol):
    """Publish with confirmation and consume with acknowledgement."""

    @property
    def is_ready(self) -> bool:
        """True while messages can be published (the broker connection is up)."""

    async def start(self) -> None:
        """Connect and declare the topology (idempotent)."""

    async def close(self) -> None:
        """Cancel consumers and disconnect; idempotent and safe after a failed start."""

    async def publish(
        self, exchange: str, routing_key: str, message: Message, *, timeout: float = 5.0
    ) -> None:
        """Return once every queue the message routes to has stored it.

        Raises:
            PublishTimeout: no confirm within ``timeout`` seconds (the message may still
                have been stored; consumers de-duplicate on ``message_id``).
            PublishRejected: the broker refused the message.
            Unroutable: nothing would have stored it.
            BusError: the bus is not connected.
        """

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        """Deliver messages of ``queue`` to ``handler``, at most ``prefetch`` unsettled at once.

        A handler that returns without settling its delivery gets it acked. One that raises a
        retryable error (``ServiceError.retryable``) gets it delivered again after the queue's
        retry delay, with ``x-attempt`` one higher, until ``max_attempts``; any other error,
        or the last attempt, dead-letters it to ``<queue>.dead`` with the reason in headers.
        """

    async def call(self, queue: str, request: bytes | Message, *, timeout: float) -> Message:
        """Send ``request`` to the RPC servers of ``queue`` and return the reply.

        A reply may be an error reply (type ``rpc.error``, body ``{"error": {...}}``).

        Raises:
            RpcTimeout: no reply within ``timeout`` seconds.
            Unroutable: ``queue`` does not exist.
            BusError: the bus is not connected.
        """

    async def serve(self, queue: str, handler: RpcHandler, *, prefetch: int = 16) -> Consumer:
        """Answer the requests of ``queue`` with ``handler``; servers of one queue compete."""

    async def dead_letter_counts(self) -> dict[str, int]:
        """Queue name → messages waiting in its ``<queue>.dead``, for every declared queue
        that has one: what the broker holds, whoever dead-lettered them (a read only).

        Raises:
            BusError: the bus is not connected.
        """
