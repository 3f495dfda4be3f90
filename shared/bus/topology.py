"""Every exchange, queue, binding and dead-letter route of the bus, declared in one place.

Both bus implementations declare a ``Topology`` at start; services add their own queues by
merging them into ``BASE_TOPOLOGY`` (``BASE_TOPOLOGY.merged(Topology(queues=(...,)))``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from shared.bus.abc import TopologyError
from shared.bus.routing import InvalidRoutingKey, validate_binding_key

ExchangeKind = Literal["topic", "direct", "fanout"]
Overflow = Literal["reject-publish", "drop-head"]
_Spec = TypeVar("_Spec", "ExchangeSpec", "QueueSpec")

DEAD_LETTER_SUFFIX = ".dead"
RETRY_SUFFIX = ".retry"
# RabbitMQ only: the direct exchange a failed message takes to ``<queue>.retry.<level>``. The
# retry queues dead-letter expired messages through the default exchange, keyed by the
# consuming queue's name, so the way back needs no exchange or binding of its own.
RETRY_EXCHANGE = "wecom.retry"
# RabbitMQ only: the direct exchange that routes ``<queue>.dead`` to each dead-letter queue
# (the in-process bus links a queue to its dead-letter queue directly).
DEAD_LETTER_EXCHANGE = "wecom.dead"
# AMQP's nameless default exchange: always present, routes to the queue named by the key
# (how RPC replies reach ``reply_to``). It is never declared.
DEFAULT_EXCHANGE = ""

EVENTS_EXCHANGE = "wecom.events"
NOTIFY_EXCHANGE = "wecom.notify"
UNROUTED_EXCHANGE = "wecom.unrouted"
UNROUTED_QUEUE = "wecom.events.unrouted"
NOTIFY_REQUEST_KEY = "notify.request"
RPC_TOKENS_QUEUE = "rpc.tokens"
RPC_AUTH_QUEUE = "rpc.auth"
RPC_NOTIFY_QUEUE = "rpc.notify"


@dataclass(frozen=True, slots=True)
class ExchangeSpec:
    """One exchange.

    ``alternate_exchange`` receives whatever this exchange cannot route to any queue, as
    RabbitMQ's ``alternate-exchange`` argument does.
    """

    name: str
    kind: ExchangeKind
    durable: bool = True
    alternate_exchange: str | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """Messages published to ``exchange`` whose routing key matches ``routing_key`` (a topic
    pattern on a topic exchange, an exact key on a direct one, ignored on a fanout one)."""

    exchange: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One queue and what feeds it.

    ``max_length`` bounds the ready messages. With ``overflow="reject-publish"`` (the
    default) a publish that would exceed it is rejected (RabbitMQ's ``x-overflow``) so the
    publisher learns of it, rather than old messages being dropped silently; ``"drop-head"``
    drops the oldest instead, for queues that only keep a recent window. ``dead_letter``
    gives the queue a ``<name>.dead`` queue that receives every message nacked without
    requeue.

    A handler that raises a retryable error (``ServiceError.retryable``) gets the message back
    after a delay, up to ``max_attempts`` deliveries in all; attempt ``n`` waits
    ``retry_delays[n - 1]`` seconds (the last one repeats). Retries need ``dead_letter``: a
    message that exhausts them goes to ``<name>.dead``. ``max_attempts=1`` turns them off.
    """

    name: str
    bindings: tuple[Binding, ...] = ()
    durable: bool = True
    quorum: bool = True
    max_length: int | None = None
    dead_letter: bool = True
    overflow: Overflow = "reject-publish"
    max_attempts: int = 5
    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)

    @property
    def retries(self) -> bool:
        """Whether a retryable failure is delivered again later (else it is dead-lettered)."""
        return self.dead_letter and self.max_attempts > 1

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return self.retry_delays[self.retry_level(attempt) - 1]

    def retry_level(self, attempt: int) -> int:
        """Which retry queue (1-based) holds a message after failed attempt ``attempt``."""
        return max(1, min(attempt, len(self.retry_delays)))

    @property
    def retry_queues(self) -> tuple[str, ...]:
        """The names of this queue's retry queues, one per delay level actually used."""
        if not self.retries:
            return ()
        levels = min(len(self.retry_delays), self.max_attempts - 1)
        return tuple(f"{self.name}{RETRY_SUFFIX}.{level}" for level in range(1, levels + 1))

    @property
    def dead_letter_queue(self) -> str | None:
        """The name of this queue's dead-letter queue, or None when it has none."""
        return self.name + DEAD_LETTER_SUFFIX if self.dead_letter else None


@dataclass(frozen=True, slots=True)
class Topology:
    """A set of exchanges and queues; names are unique within it."""

    exchanges: tuple[ExchangeSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()

    def __post_init__(self) -> None:
        _ensure_unique("exchange", [e.name for e in self.exchanges])
        _ensure_unique("queue", [q.name for q in self.queues])

    def merged(self, *others: Topology) -> Topology:
        """This topology plus ``others``.

        A spec declared identically in several parts is kept once; two different specs under
        one name raise, as RabbitMQ refuses to redeclare a queue with other arguments.

        Raises:
            TopologyError: two parts declare the same name differently.
        """
        exchanges = {e.name: e for e in self.exchanges}
        queues = {q.name: q for q in self.queues}
        for other in others:
            for exchange in other.exchanges:
                _add_once(exchanges, exchange.name, exchange, "exchange")
            for queue in other.queues:
                _add_once(queues, queue.name, queue, "queue")
        return Topology(exchanges=tuple(exchanges.values()), queues=tuple(queues.values()))

    def exchange(self, name: str) -> ExchangeSpec:
        """The exchange called ``name``.

        Raises:
            TopologyError: no such exchange is declared.
        """
        for exchange in self.exchanges:
            if exchange.name == name:
                return exchange
        raise TopologyError(f"exchange {name!r} is not declared")

    def validate(self) -> None:
        """Check that the topology is complete: every binding and alternate exchange names a
        declared exchange, topic patterns are well formed, dead-letter queues clash with
        nothing. Bus implementations call this at start, on the merged topology.

        Raises:
            TopologyError: the first problem found.
        """
        kinds = {e.name: e.kind for e in self.exchanges}
        for exchange in self.exchanges:
            _validate_exchange(exchange, kinds)
        names = {q.name for q in self.queues}
        for queue in self.queues:
            _validate_queue(queue, names, kinds)


def _validate_exchange(exchange: ExchangeSpec, kinds: dict[str, ExchangeKind]) -> None:
    if exchange.name == DEFAULT_EXCHANGE:
        raise TopologyError("the default exchange '' exists already and cannot be declared")
    alternate = exchange.alternate_exchange
    if alternate is not None and alternate not in kinds:
        raise TopologyError(f"exchange {exchange.name!r} names undeclared alternate {alternate!r}")


def _validate_queue(queue: QueueSpec, names: set[str], kinds: dict[str, ExchangeKind]) -> None:
    if not queue.name:
        raise TopologyError("a queue needs a name")
    if queue.max_length is not None and queue.max_length < 0:
        raise TopologyError(f"queue {queue.name!r} has a negative max_length")
    if queue.quorum and not queue.durable:
        # RabbitMQ refuses the declaration; fail the same way in every implementation.
        raise TopologyError(f"quorum queue {queue.name!r} must be durable")
    if queue.max_attempts < 1:
        raise TopologyError(f"queue {queue.name!r} needs max_attempts of at least 1")
    if queue.retries and (not queue.retry_delays or min(queue.retry_delays) < 0):
        raise TopologyError(f"queue {queue.name!r} needs non-negative retry_delays")
    for derived in (queue.dead_letter_queue, *queue.retry_queues):
        if derived is not None and derived in names:
            raise TopologyError(f"queue {derived!r} clashes with one derived from {queue.name!r}")
    for binding in queue.bindings:
        kind = kinds.get(binding.exchange)
        if kind is None:
            raise TopologyError(
                f"queue {queue.name!r} is bound to undeclared exchange {binding.exchange!r}"
            )
        _validate_binding(queue.name, kind, binding.routing_key)


def _validate_binding(queue: str, kind: ExchangeKind, routing_key: str) -> None:
    try:
        validate_binding_key(routing_key, topic=kind == "topic")
    except InvalidRoutingKey as exc:
        raise TopologyError(f"queue {queue!r}: {exc.message}") from exc


def _ensure_unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TopologyError(f"{what} {name!r} is declared twice")
        seen.add(name)


def _add_once(specs: dict[str, _Spec], name: str, spec: _Spec, what: str) -> None:
    existing = specs.get(name)
    if existing is None:
        specs[name] = spec
    elif existing != spec:
        raise TopologyError(f"{what} {name!r} is declared twice with different settings")


# RPC request queues: classic (a request lives for seconds, replication buys nothing), no
# retries and no dead letters (a failed request becomes an error reply; an expired one, whose
# caller gave up, is dropped). Replies travel on a per-bus exclusive queue (``_rabbitmq_rpc``).
RPC_QUEUES = tuple(
    QueueSpec(name, quorum=False, dead_letter=False, max_attempts=1)
    for name in (RPC_TOKENS_QUEUE, RPC_AUTH_QUEUE, RPC_NOTIFY_QUEUE)
)
# Kept apart from BASE_TOPOLOGY: the services that serve or call merge it in
# (``BASE_TOPOLOGY.merged(RPC_TOPOLOGY, ...)``), so a lone gateway declares nothing it never uses.
RPC_TOPOLOGY = Topology(queues=RPC_QUEUES)

# Events are published under their type, including types WeCom adds after this code was
# written and types no service consumes yet. Without an alternate exchange such an event
# would be unroutable, the publish would fail and the gateway would answer WeCom 503 for
# ever; with it, the event is kept in a bounded queue where an operator can see it. That
# queue keeps the newest events (drop-head): an app that consumes nothing yet must not make
# every callback fail once it fills up.
BASE_TOPOLOGY = Topology(
    exchanges=(
        ExchangeSpec(EVENTS_EXCHANGE, "topic", alternate_exchange=UNROUTED_EXCHANGE),
        ExchangeSpec(NOTIFY_EXCHANGE, "direct"),
        ExchangeSpec(UNROUTED_EXCHANGE, "fanout"),
    ),
    queues=(
        QueueSpec(
            UNROUTED_QUEUE,
            bindings=(Binding(UNROUTED_EXCHANGE, ""),),
            max_length=10_000,
            dead_letter=False,
            overflow="drop-head",
        ),
    ),
)
