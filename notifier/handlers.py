"""The wire format of the notifier: a ``notifier.requests`` delivery in, one ``notify.result``
event out, and a wait turned back into a later delivery (never a drop).

Carrying the request out is :mod:`notifier.dispatch`'s job; this module only parses, binds
the log context, publishes and hands waits back to the bus.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from notifier.dispatch import Dispatcher
from notifier.domain import failed_result
from notifier.metrics import NotifierMetrics
from notifier.outcomes import Postpone, Wait
from notifier.schedule import RequestSchedule
from shared.bus.abc import Bus, Delivery, Message, RetryLater, attempt_of
from shared.bus.events import publish_event
from shared.bus.topology import NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY, QueueSpec
from shared.contracts import event_types, service_event
from shared.notify import NotifyRequestInvalid, NotifyResult, parse_notify_request

log = structlog.get_logger(__name__)


def result_event_id(request_id: str) -> str:
    """The envelope id of a request's result: the same for every republication, so consumers
    that de-duplicate on ``id`` see one result per request."""
    # A NUL separator, unlike stable_event_id's newline: kept so that a result republished
    # across an upgrade keeps its id.
    return hashlib.sha256(f"{event_types.NOTIFY_RESULT}\0{request_id}".encode()).hexdigest()


def request_id_of(message: Message) -> str:
    """The ``id`` of an invalid request if it has a usable one, else the bus message id."""
    try:
        body = json.loads(message.body)
    except ValueError:
        return message.message_id
    value = body.get("id") if isinstance(body, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 128:
        return value
    return message.message_id


class NotifierHandlers:
    """Carries out notification requests; ``handle`` is the consumer of notifier.requests."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        schedule: RequestSchedule,
        bus: Bus,
        metrics: NotifierMetrics,
        queue: QueueSpec,
        *,
        suite_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dispatcher = dispatcher
        self._schedule = schedule
        self._bus = bus
        self._metrics = metrics
        self._queue = queue
        self._suite_id = suite_id
        self._clock = clock

    async def handle(self, delivery: Delivery) -> None:
        """The consumer of notifier.requests: one delivery, at most one result published."""
        message = delivery.message
        try:
            request = parse_notify_request(message.body)
        except NotifyRequestInvalid as exc:
            request_id = request_id_of(message)
            await self.publish(failed_result(request_id, exc.message), corp_id=None)
            return
        last_delivery = attempt_of(message) >= self._queue.max_attempts
        with structlog.contextvars.bound_contextvars(
            request_id=request.id, corp_id=request.corp_id
        ):
            try:
                outcome = await self._dispatcher.run(request, last_delivery=last_delivery)
            except Wait as wait:
                await self._later(message, wait, last_delivery=last_delivery)
                return
            except Postpone as postponed:
                # Kept in the store and acked: the schedule delivers it again when it is due.
                await self._schedule.put(request.id, message.body, postponed.due_at)
                log.info("notify_scheduled", window=postponed.window, due_at=postponed.due_at)
                return
            await self.publish(outcome.result, corp_id=request.corp_id, count=not outcome.repeated)

    async def _later(self, message: Message, wait: Wait, *, last_delivery: bool) -> None:
        """Have the request delivered again later. On the queue's last delivery the bus would
        dead-letter it, so a fresh copy is published instead: a wait never drops a message."""
        self._metrics.retries.labels(wait.reason).inc()
        if not last_delivery:
            log.info("notify_waiting", reason=wait.reason, window=wait.window)
            raise RetryLater(wait.reason)
        log.info("notify_republished", reason=wait.reason, window=wait.window)
        fresh = Message(body=message.body, message_id=message.message_id, type=message.type)
        await self._bus.publish(NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY, fresh)

    async def publish(
        self, result: NotifyResult, *, corp_id: str | None, count: bool = True
    ) -> None:
        """Publish ``result`` as a ``notify.result`` event on wecom.events."""
        envelope = service_event(
            event_types.NOTIFY_RESULT,
            result,
            event_id=result_event_id(result.request_id),
            suite_id=self._suite_id,
            corp_id=corp_id,
            occurred_at=datetime.fromtimestamp(self._clock(), UTC),
        )
        await publish_event(self._bus, envelope)
        if count:
            self._metrics.results.labels(result.status).inc()
            if result.status in ("failed", "expired"):
                # One warning per request that did not reach its members; the reason is the
                # notifier's or WeCom's errmsg, never the message content.
                log.warning(
                    "notify_request_failed",
                    request_id=result.request_id,
                    corp_id=corp_id,
                    status=result.status,
                    errcode=result.errcode,
                    reason=result.errmsg,
                    attempts=result.attempts,
                )
