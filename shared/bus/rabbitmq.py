"""The RabbitMQ bus: the ``Bus`` contract on a robust aio-pika connection.

Publishes go through one confirming channel (many confirms in flight at once); each consumer
gets its own channel (``_rabbitmq_consumer``). The topology is declared idempotently at start
(``_rabbitmq_topology``). A retryable handler failure is republished, confirmed, to a
``<queue>.retry.<level>`` queue whose per-message TTL returns it to the queue after the delay;
RPC calls wait on a reply queue of their own (``_rabbitmq_rpc``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
    DeliveryMode,
)
from aio_pika.exceptions import DeliveryError, PublishError
from pamqp.commands import Basic
from prometheus_client import CollectorRegistry
from yarl import URL

from shared.bus._broker_errors import BROKER_AWAY, CHANNEL_OPEN_ERRORS, is_broker_away
from shared.bus._rabbitmq_consumer import DeadLetterPublisher, RabbitConsumer, RetryPublisher
from shared.bus._rabbitmq_rpc import ReplyQueue
from shared.bus._rabbitmq_topology import declare_topology
from shared.bus._reconnect import CONNECT_BACKOFF, keep_trying
from shared.bus._rpc import server_handler
from shared.bus.abc import (
    BusError,
    Consumer,
    Handler,
    HeaderValue,
    Message,
    PublishRejected,
    PublishTimeout,
    RpcHandler,
    TopologyError,
    Unroutable,
)
from shared.bus.routing import validate_routing_key
from shared.bus.topology import (
    DEAD_LETTER_SUFFIX,
    DEFAULT_EXCHANGE,
    QueueSpec,
    Topology,
)
from shared.errors import InvalidRequest
from shared.metrics import dead_letter_counter

log = structlog.get_logger(__name__)

# aio-pika applies no timeout of its own to opening a channel or declaring.
_DECLARE_TIMEOUT = 30.0
_DEAD_LETTER_TIMEOUT = 5.0  # confirm wait for the copy a failed handler sends to <queue>.dead
_RETRY_TIMEOUT = 5.0  # confirm wait for the copy a failed handler sends to <queue>.retry.<n>


class RabbitMQBus:
    """The ``Bus`` on RabbitMQ.

    Args:
        url: the AMQP URL; its query parameters (``heartbeat``, ``reconnect_interval``, …) win
            over the defaults given here.
        topology: what to declare at ``start()``.
        prefetch_default: the prefetch of ``consume()`` when none is given.
        reconnect_interval: seconds between reconnection attempts once connected.
        connection_name: shown in the RabbitMQ management UI.
        connect_timeout: seconds for one connection attempt.
        start_timeout: seconds ``start()`` keeps retrying the very first connection, which
            aio-pika does not retry by itself (``CONNECT_BACKOFF`` apart). ``0`` makes one
            attempt: what ``create_bus`` asks for, since a service's ``BusComponent`` is the
            one layer that retries ``start()`` until the broker is there.
        close_grace: seconds ``close()`` lets in-flight handlers finish.
        registry: where dead letters are counted (``wecom_bus_dead_letters_total``); a
            registry of the bus's own when not given.
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        prefetch_default: int = 16,
        reconnect_interval: float = 1.0,
        connection_name: str | None = None,
        connect_timeout: float = 5.0,
        start_timeout: float = 30.0,
        close_grace: float = 10.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._url = _with_defaults(URL(url), reconnect_interval, connection_name)
        self._topology = topology
        self._dead_letters = dead_letter_counter(
            registry or CollectorRegistry(),
            (spec.name for spec in topology.queues if spec.dead_letter_queue is not None),
        )
        self._prefetch_default = prefetch_default
        self._connect_timeout = connect_timeout
        self._start_backoff = replace(CONNECT_BACKOFF, deadline_s=start_timeout)
        self._close_grace = close_grace
        # Queues a consumer may subscribe to, with the spec that governs its failures (a
        # dead-letter queue's consumer gets neither retries nor dead letters).
        self._consumable: dict[str, QueueSpec] = {}
        for spec in topology.queues:
            self._consumable[spec.name] = spec
            if spec.dead_letter_queue is not None:
                self._consumable[spec.dead_letter_queue] = QueueSpec(
                    spec.dead_letter_queue, dead_letter=False, max_attempts=1
                )
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._dead_exchange: AbstractExchange | None = None
        self._retry_exchange: AbstractExchange | None = None
        self._replies = ReplyQueue(self._send_reply_request, connect_timeout)
        self._consumers: set[RabbitConsumer] = set()
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closing: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def is_ready(self) -> bool:
        """True while the robust connection is up and the publishing channel is open."""
        connection, channel = self._connection, self._channel
        return (
            self._started
            and not self._closed
            and connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
            and channel is not None
            and not channel.is_closed
        )

    async def start(self) -> None:
        """Connect (retrying the first connection for ``start_timeout`` seconds) and declare
        the topology; a second call does nothing.

        Raises:
            TopologyError: the topology is inconsistent, or the broker holds an exchange or
                queue of the same name with other settings.
            BusError: the broker could not be reached, or the bus was closed.
        """
        async with self._start_lock:
            if self._closing is not None:
                raise BusError("the RabbitMQ bus is closed and cannot be restarted")
            if self._started:
                return
            self._topology.validate()
            connection = self._connection = await keep_trying(
                self._connect, self._start_backoff, event="bus_connect_failed", host=self._url.host
            )
            try:
                await asyncio.wait_for(self._open_and_declare(connection), _DECLARE_TIMEOUT)
            except TimeoutError as exc:
                await self._disconnect()
                raise BusError("declaring the topology timed out") from exc
            except BaseException:
                await self._disconnect()
                raise
            self._started = True
        log.info(
            "bus_started",
            engine="rabbitmq",
            host=self._url.host,
            vhost=self._url.path[1:] or "/",
            exchanges=len(self._exchanges),
            queues=len(self._consumable),
        )

    async def _connect(self) -> AbstractRobustConnection:
        """One attempt at the first connection."""
        try:
            return await aio_pika.connect_robust(self._url, timeout=self._connect_timeout)
        except BROKER_AWAY as exc:
            raise BusError(
                f"cannot connect to RabbitMQ at {self._url.host}:{self._url.port}: "
                f"{type(exc).__name__}"
            ) from exc

    async def _open_and_declare(self, connection: AbstractRobustConnection) -> None:
        channel = connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            await channel.initialize()
        except CHANNEL_OPEN_ERRORS as exc:
            if not is_broker_away(exc, connection):
                raise
            raise BusError(f"cannot open the publishing channel: {type(exc).__name__}") from exc
        self._channel = channel
        await self._declare(channel)

    async def _declare(self, channel: AbstractRobustChannel) -> None:
        declared = await declare_topology(channel, self._topology)
        self._exchanges = declared.exchanges
        self._dead_exchange = declared.dead_exchange
        self._retry_exchange = declared.retry_exchange

    async def close(self) -> None:
        """Cancel every consumer (requeueing what they had not settled), then close the
        channel and the connection. Idempotent, and safe before or after a failed start."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        async with self._start_lock:  # a start under way finishes first
            # Consumers first: a handler finishing within the grace period may still publish.
            consumers = list(self._consumers)
            await asyncio.gather(*(c.cancel(grace=self._close_grace) for c in consumers))
            self._closed = True
            await self._replies.close()
            await self._disconnect()
        if self._started:
            log.info("bus_closed", engine="rabbitmq", consumers=len(consumers))

    async def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is None:
            return
        try:
            # Closing the connection closes its channels; the broker requeues what they held.
            await asyncio.wait_for(connection.close(), self._connect_timeout)
        except BROKER_AWAY as exc:
            log.warning("bus_close_failed", error_type=type(exc).__name__)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: Message,
        *,
        timeout: float = 5.0,
    ) -> None:
        """Return once the broker confirmed that every queue the message routes to stored it.

        Raises:
            PublishTimeout: no confirm within ``timeout`` (the message may still be stored).
            PublishRejected: the broker nacked the message (e.g. a bounded queue is full).
            Unroutable: the broker returned the message (no queue, no alternate exchange).
            TopologyError: ``exchange`` is not declared.
            InvalidRoutingKey: the routing key is longer than 255 bytes.
            BusError: the bus is not connected (raised at once, never buffered).
        """
        if not self._started or self._closed:
            raise BusError("the RabbitMQ bus is closed" if self._closed else "bus not started")
        if exchange == DEFAULT_EXCHANGE:
            target = self._publisher().default_exchange
        else:
            found = self._exchanges.get(exchange)
            if found is None:
                raise TopologyError(f"exchange {exchange!r} is not declared")
            target = found
        validate_routing_key(routing_key)
        await self._send(target, routing_key, message, timeout)

    def _publisher(self) -> AbstractRobustChannel:
        channel = self._channel
        if channel is None or not self.is_ready:
            # aio-pika would raise on a closed channel too; say so plainly, and at once.
            raise BusError("the RabbitMQ connection is down (reconnecting)")
        return channel

    async def _send(
        self,
        target: AbstractExchange,
        routing_key: str,
        message: Message,
        timeout: float,
        expiration: float | None = None,
    ) -> None:
        channel = self._publisher()
        # aiormq matches a basic.return to its publish by message_id: two concurrent publishes
        # with one message_id that are both unroutable could swap outcomes. Both fail then,
        # and the gateway never has two publishes of one id in flight.
        try:
            # One timer on this task rather than wait_for's extra task per publish.
            async with asyncio.timeout(timeout):
                # Straight to the aiormq channel under the robust one: aio-pika's
                # Exchange.publish makes aiormq wait, under the channel's lock, until the
                # connection's writer has flushed the frames, so concurrent publishes queued
                # behind one another at an event-loop round trip each. wait=False releases
                # the lock once the frames are queued; the confirm is still awaited.
                underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
                confirmation = await underlay.basic_publish(
                    message.body,
                    exchange=target.name,
                    routing_key=routing_key,
                    properties=_properties(message, expiration),
                    mandatory=True,
                    wait=False,
                )
        except TimeoutError as exc:
            raise PublishTimeout(f"no confirm within {timeout} s") from exc
        except PublishError as exc:
            raise Unroutable(f"no queue is bound on {target.name!r} for {routing_key!r}") from exc
        except DeliveryError as exc:
            raise PublishRejected(f"the broker nacked the message on {target.name!r}") from exc
        except BROKER_AWAY as exc:
            raise BusError(f"publishing failed: {type(exc).__name__}") from exc
        if not isinstance(confirmation, Basic.Ack):
            raise PublishRejected(f"the broker did not ack the message on {target.name!r}")

    async def _publish_dead_letter(
        self, queue: str, message: Message, headers: dict[str, HeaderValue]
    ) -> None:
        if self._dead_exchange is None or self._closed:
            raise BusError("no dead-letter exchange is available")
        copy = replace(message, headers={**message.headers, **headers})
        dead_queue = queue + DEAD_LETTER_SUFFIX
        await self._send(self._dead_exchange, dead_queue, copy, _DEAD_LETTER_TIMEOUT)

    async def _publish_retry(
        self, spec: QueueSpec, level: int, message: Message, delay: float
    ) -> None:
        if self._retry_exchange is None or self._closed:
            raise BusError("no retry exchange is available")
        retry_queue = spec.retry_queues[level - 1]
        await self._send(self._retry_exchange, retry_queue, message, _RETRY_TIMEOUT, delay)

    async def _send_reply_request(self, queue: str, message: Message, timeout: float) -> None:
        # The request expires with the call: a server never works on one nobody waits for.
        validate_routing_key(queue)
        channel = self._publisher()
        await self._send(channel.default_exchange, queue, message, timeout, expiration=timeout)

    async def call(self, queue: str, request: bytes | Message, *, timeout: float) -> Message:
        """Send ``request`` to the servers of ``queue`` and return their reply.

        Raises:
            RpcTimeout: no reply within ``timeout`` seconds.
            Unroutable: ``queue`` does not exist.
            BusError: the bus is not connected.
        """
        if not self._started or self._closed:
            raise BusError("the RabbitMQ bus is closed" if self._closed else "bus not started")
        connection = self._connection
        if connection is None or not self.is_ready:
            raise BusError("the RabbitMQ connection is down (reconnecting)")
        return await self._replies.call(connection, queue, request, timeout)

    async def serve(self, queue: str, handler: RpcHandler, *, prefetch: int = 16) -> Consumer:
        """Answer the requests of ``queue`` with ``handler``; servers of one queue compete, and
        a handler's error becomes an error reply.

        Raises:
            TopologyError: ``queue`` is not declared.
            BusError: the bus is not running or the broker is unreachable.
        """
        return await self.consume(
            queue, server_handler(queue, handler, self.publish), prefetch=prefetch
        )

    async def dead_letter_counts(self) -> dict[str, int]:
        """Queue name → messages in its ``<queue>.dead``, by a passive declare on a channel of
        its own (a queue another service has not declared yet counts as 0)."""
        connection = self._connection
        if connection is None or not self.is_ready:
            raise BusError("the RabbitMQ connection is down (reconnecting)")
        counts: dict[str, int] = {}
        for spec in self._topology.queues:
            dead = spec.dead_letter_queue
            if dead is None:
                continue
            # A passive declare of a missing queue closes its channel: one channel each.
            try:
                async with connection.channel() as channel:
                    declared = await channel.declare_queue(dead, passive=True)
                    counts[spec.name] = declared.declaration_result.message_count or 0
            except aio_pika.exceptions.ChannelNotFoundEntity:
                counts[spec.name] = 0
        return counts

    async def consume(
        self, queue: str, handler: Handler, *, prefetch: int | None = None
    ) -> Consumer:
        """Deliver messages of ``queue`` to ``handler`` on a channel of their own, at most
        ``prefetch`` (default ``prefetch_default``) unsettled at once.

        Consumers of one queue compete. A handler that returns without settling gets its
        delivery acked; one that raises gets it dead-lettered with the exception type and
        message in the headers.

        Raises:
            TopologyError: ``queue`` is not declared.
            InvalidRequest: ``prefetch`` is below 1.
            BusError: the bus is not running or the broker is unreachable.
        """
        if not self._started or self._closing is not None:
            raise BusError("the RabbitMQ bus is not running")
        prefetch = self._prefetch_default if prefetch is None else prefetch
        if prefetch < 1:
            raise InvalidRequest("prefetch must be at least 1")
        spec = self._consumable.get(queue)
        if spec is None:
            raise TopologyError(f"queue {queue!r} is not declared")
        if self._connection is None or not self.is_ready:
            raise BusError("the RabbitMQ connection is down (reconnecting)")
        dead_letter: DeadLetterPublisher | None = None
        dead_letters = None
        if spec.dead_letter:
            dead_letter = self._publish_dead_letter
            dead_letters = self._dead_letters.labels(queue)
        retry: RetryPublisher | None = self._publish_retry if spec.retries else None
        channel = self._connection.channel(publisher_confirms=False)
        consumer = RabbitConsumer(
            channel,
            spec,
            handler,
            dead_letter=dead_letter,
            retry=retry,
            on_stopped=self._consumers.discard,
            dead_letters=dead_letters,
        )
        try:
            # A robust channel waits for the connection to come back; don't wait for ever.
            await asyncio.wait_for(channel.initialize(), self._connect_timeout)
            await asyncio.wait_for(consumer.start(prefetch), self._connect_timeout)
        except CHANNEL_OPEN_ERRORS as exc:
            if channel.is_initialized and not channel.is_closed:
                await channel.close()
            if not is_broker_away(exc, self._connection):
                raise
            raise BusError(f"cannot consume from {queue!r}: {type(exc).__name__}") from exc
        self._consumers.add(consumer)
        return consumer


def _with_defaults(url: URL, reconnect_interval: float, connection_name: str | None) -> URL:
    # aio-pika reads connection options either from keyword arguments or from the URL query,
    # never both; keep them all in the URL so an operator's AMQP_URL options still apply.
    defaults: dict[str, str] = {"reconnect_interval": str(reconnect_interval)}
    if connection_name:
        defaults["name"] = connection_name
    return url.with_query({**defaults, **url.query})


def _properties(message: Message, expiration: float | None = None) -> Basic.Properties:
    """The AMQP properties of ``message``: what ``aio_pika.Message(...).properties`` gives
    for the same fields, built without the intermediate message object."""
    return Basic.Properties(
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        delivery_mode=DeliveryMode.PERSISTENT.value,
        expiration=None if expiration is None else str(int(expiration * 1000)),
        headers=dict(message.headers),
        message_id=message.message_id,
        message_type=message.type,
        priority=0,
        reply_to=message.reply_to,
        timestamp=message.timestamp or datetime.now(UTC),
    )
