"""What a delivery does the same way on both buses: settle exactly once (ack, nack, or a failed
handler's retry or dead letter) and ``async with delivery.process():``.

Each bus subclasses :class:`SettledOnce` with where the message came from and how a settlement
reaches its queue (``_settle``); the rules above are written only here.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar

import structlog
from prometheus_client import Counter

from shared.bus._retry import FailurePlan, plan_failure
from shared.bus.abc import AlreadySettled, BusError, HeaderValue, Message
from shared.bus.topology import QueueSpec

log = structlog.get_logger(__name__)

Outcome = Literal["acked", "nacked", "dead_lettered", "requeued", "retried"]


def death_headers(reason: str, queue: str) -> dict[str, HeaderValue]:
    """The headers a dead letter carries to say why and from where."""
    return {"x-death-reason": reason, "x-death-queue": queue}


class Owner(Protocol):
    """The consumer a delivery belongs to, as far as the shared rules need it."""

    @property
    def queue_name(self) -> str: ...

    @property
    def spec(self) -> QueueSpec: ...

    @property
    def dead_letters(self) -> Counter | None:
        """This queue's ``wecom_bus_dead_letters_total`` series; None if it has no ``.dead``."""
        ...


C = TypeVar("C", bound=Owner)


class SettledOnce(Generic[C]):
    """One delivery of a message to one consumer (``C``); settled exactly once."""

    __slots__ = ("_consumer", "outcome", "tag", "task")

    def __init__(self, consumer: C, tag: int) -> None:
        self._consumer = consumer
        self.tag = tag
        self.outcome: Outcome | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def queue_name(self) -> str:
        return self._consumer.queue_name

    @property
    def spec(self) -> QueueSpec:
        return self._consumer.spec

    # Provided by each bus.
    @property
    def message(self) -> Message:
        raise NotImplementedError

    @property
    def exchange(self) -> str:
        raise NotImplementedError

    @property
    def routing_key(self) -> str:
        raise NotImplementedError

    async def _settle(
        self,
        outcome: Outcome,
        headers: dict[str, HeaderValue] | None = None,
        *,
        plan: FailurePlan | None = None,
    ) -> None:
        """Tell the queue (the consumer) that this delivery is ``outcome``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        # Never the body: deliveries end up in tracebacks and log lines.
        return (
            f"<Delivery queue={self.queue_name!r} tag={self.tag} "
            f"message_id={self.message.message_id!r} outcome={self.outcome}>"
        )

    @property
    def is_settled(self) -> bool:
        return self.outcome is not None

    def mark_settled(self, outcome: Outcome) -> None:
        """Record ``outcome``; the consumer calls this first when it settles the delivery.

        Raises:
            AlreadySettled: the delivery was already settled.
        """
        if self.outcome is not None:
            raise AlreadySettled(
                f"delivery {self.tag} of queue {self.queue_name!r} was already "
                f"{self.outcome.replace('_', '-')}"
            )
        self.outcome = outcome

    async def ack(self) -> None:
        """Done with the message: remove it from the queue.

        Raises:
            AlreadySettled: the delivery was already settled.
            BusError: the channel is gone (RabbitMQ: the broker will redeliver the message).
        """
        await self._settle("acked")

    async def nack(self, *, requeue: bool) -> None:
        """Give the message back to the queue (``requeue=True``, marked redelivered) or
        dead-letter it (``requeue=False``).

        Raises:
            AlreadySettled: the delivery was already settled.
            BusError: the channel is gone (RabbitMQ: the broker will redeliver the message).
        """
        if requeue:
            await self._settle("nacked")
        else:
            await self._dead_letter(death_headers("rejected", self.queue_name))

    async def fail(self, exc: Exception) -> None:
        """Retry the message later or dead-letter it, because handling it raised ``exc``.

        Raises:
            AlreadySettled: the delivery was already settled.
            BusError: the channel is gone (RabbitMQ: the broker will redeliver the message).
        """
        plan = plan_failure(
            self.spec, self.message, exc, exchange=self.exchange, routing_key=self.routing_key
        )
        if plan.is_retry:
            await self._settle("retried", plan=plan)
        else:
            await self._dead_letter(plan.headers)

    async def _dead_letter(self, headers: dict[str, HeaderValue]) -> None:
        await self._settle("dead_lettered", headers)
        # Counted once the queue took it: a settlement the broker never heard of is
        # redelivered, not dead-lettered.
        counter = self._consumer.dead_letters
        if counter is not None:
            counter.inc()

    async def settle_quietly(self, outcome: Outcome, failure: Exception | None = None) -> None:
        """Settle as ``outcome`` (or, given the handler's ``failure``, as :meth:`fail`
        decides) where a broken channel can only be logged: the broker redelivers whatever it
        did not hear about, and the handler's own error is the one to keep."""
        try:
            if failure is not None:
                await self.fail(failure)
            else:
                await self._settle(outcome)
        except BusError as error:
            log.warning(
                "consumer_settle_failed",
                queue=self.queue_name,
                message_id=self.message.message_id,
                outcome=outcome,
                error=error.message,
            )

    def process(self) -> Process[Self]:
        """Context manager: ack on normal exit; retry or dead-letter on an exception."""
        return Process(self)


D = TypeVar("D", bound=SettledOnce[Any])


class Process(Generic[D]):
    """``async with delivery.process():`` as in aio-pika, but a cancelled block leaves the
    delivery unsettled so that the stopping consumer requeues it instead of dead-lettering."""

    __slots__ = ("_delivery",)

    def __init__(self, delivery: D) -> None:
        self._delivery = delivery

    async def __aenter__(self) -> D:
        return self._delivery

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        delivery = self._delivery
        if delivery.is_settled:
            return
        if exc is None:
            await delivery.ack()
        elif isinstance(exc, Exception):
            await delivery.settle_quietly("dead_lettered", exc)
