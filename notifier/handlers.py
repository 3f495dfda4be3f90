"""The consumer of ``notifier.requests``: one delivery in, at most one WeCom send, one
``notify.result`` out.

Idempotent on the request ``id``: a per-request record is claimed before anything is sent and
holds the final result, so a redelivered or republished request republishes that result and
sends nothing. Transient failures go back to the bus's delayed retry; a failure after which
the message may have been delivered is retried only with WeCom's duplicate check on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import structlog

from notifier.domain import (
    Failure,
    FailureKind,
    Window,
    app_weight,
    failed_result,
    is_last_attempt,
    pinned_send_options,
    result_of_failure,
    retry_covered,
)
from notifier.metrics import NotifierMetrics
from notifier.sender import SEND_PATH, WeComSender, path_of
from notifier.store import Claim, NotifierRepository, Reservation
from shared.auth_client import AuthClient, AuthUnavailable
from shared.backoff import Backoff
from shared.bus.abc import Bus, BusError, Delivery, Message, RetryLater, attempt_of
from shared.bus.events import publish_event
from shared.bus.topology import NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY, QueueSpec
from shared.contracts import event_types, service_event
from shared.notify import (
    NotifyRequest,
    NotifyRequestInvalid,
    NotifyResult,
    expired_result,
    inline_media,
    parse_notify_request,
    result_from_wecom_answer,
    to_wecom_body,
)
from shared.tokens import TokenUnavailable
from shared.wecom.api import (
    WeComApiError,
    WeComBusy,
    WeComRateLimited,
    WeComTokenRejected,
    WeComUnavailable,
)

log = structlog.get_logger(__name__)

# A held send waits for its bucket plus 10 to 50 ms, so that replicas woken together spread out.
_HELD_SEND_JITTER: Final = Backoff(initial_s=0.01, jitter_s=0.04)


@dataclass(frozen=True, slots=True)
class NotifierPolicy:
    """The notifier's limits and timings, taken from its settings."""

    max_attempts: int
    member_windows: tuple[Window, ...]
    app_windows: tuple[Window, ...]
    margin_s: float
    group_size: int
    hold_s: float
    media_margin_s: float
    claim_s: float
    # How long the bus may still take to run a request's remaining retries.
    retry_horizon_s: float


class _Wait(Exception):
    """Not now, but never failed for it: a send limit, or another delivery owns the request."""

    def __init__(self, reason: str, window: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.window = window


@dataclass(slots=True)
class _Progress:
    """The claim as last written by this delivery (each write moves its version on)."""

    claim: Claim


class _Failed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.errmsg)
        self.failure = failure


_API_ERROR_KINDS: Final[tuple[tuple[type[WeComApiError], FailureKind], ...]] = (
    (WeComBusy, "busy"),
    (WeComRateLimited, "rate_limited"),
    # with_token already refreshed once: a second rejection is a wrong or void credential.
    (WeComTokenRejected, "token"),
    (WeComApiError, "permanent"),
)


def classify(exc: Exception) -> Failure | None:
    """The :class:`Failure` an exception of a WeCom, token or auth call means; None for any
    other exception (a bug or a store outage, left to the bus)."""
    if isinstance(exc, WeComApiError):
        kind = next(kind for cls, kind in _API_ERROR_KINDS if isinstance(exc, cls))
        return Failure(kind, exc.errcode, exc.errmsg)
    if isinstance(exc, WeComUnavailable):
        return Failure("unavailable", None, exc.message, maybe_delivered=exc.maybe_delivered)
    if isinstance(exc, TokenUnavailable):
        token_kind: FailureKind = "unavailable" if exc.retryable_now else "permanent"
        return Failure(token_kind, None, f"no corp token ({exc.error_code}): {exc.message}")
    if isinstance(exc, AuthUnavailable | BusError):
        return Failure("unavailable", None, exc.message)
    return None


class InstalledAgents:
    """The app's agent id in a corp, from ``rpc.auth``, cached briefly per process."""

    def __init__(
        self, auth: AuthClient, *, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._auth = auth
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[int, float]] = {}

    async def agent_id(self, corp_id: str) -> int | None:
        cached = self._cache.get(corp_id)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        installation = await self._auth.installation(corp_id)
        if installation is None or installation.status != "active":
            return None
        if installation.agent_id is not None:
            self._cache[corp_id] = (installation.agent_id, self._clock() + self._ttl_s)
        return installation.agent_id


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
        repository: NotifierRepository,
        sender: WeComSender,
        agents: InstalledAgents,
        bus: Bus,
        metrics: NotifierMetrics,
        policy: NotifierPolicy,
        queue: QueueSpec,
        *,
        suite_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._sender = sender
        self._agents = agents
        self._bus = bus
        self._metrics = metrics
        self._policy = policy
        self._queue = queue
        self._suite_id = suite_id
        self._clock = clock

    async def handle(self, delivery: Delivery) -> None:
        message = delivery.message
        try:
            request = parse_notify_request(message.body)
        except NotifyRequestInvalid as exc:
            request_id = request_id_of(message)
            log.warning("notify_request_invalid", request_id=request_id, problem=exc.message)
            await self.publish(failed_result(request_id, exc.message), corp_id=None)
            return
        last_delivery = attempt_of(message) >= self._queue.max_attempts
        with structlog.contextvars.bound_contextvars(
            request_id=request.id, corp_id=request.corp_id
        ):
            try:
                await self._handle(request, last_delivery=last_delivery)
            except _Wait as wait:
                await self._later(message, wait, last_delivery=last_delivery)

    async def _handle(self, request: NotifyRequest, *, last_delivery: bool) -> None:
        owner = uuid.uuid4().hex
        claimed = await self._repository.claim(request.id, owner, self._policy.claim_s)
        if claimed is None:
            raise _Wait("claimed_elsewhere")
        if not isinstance(claimed, Claim):
            # Done before: republish the stored result, send nothing.
            assert claimed.result is not None  # noqa: S101 - claim() returns only done records
            self._metrics.republished.inc()
            log.info("notify_request_repeated", status=claimed.result.status)
            await self.publish(claimed.result, corp_id=request.corp_id, count=False)
            return
        progress = _Progress(claimed)
        try:
            result = await self._attempt(request, progress)
            claim = progress.claim
        except _Wait:
            await self._unclaim(progress.claim)
            raise
        except _Failed as failed:
            claim = await self._after_failure(progress.claim, failed.failure)
            attempts = claim.record.attempts
            if failed.failure.is_retryable and not is_last_attempt(
                attempts, self._policy.max_attempts, last_delivery=last_delivery
            ):
                self._metrics.retries.labels(failed.failure.kind).inc()
                log.info("notify_retrying", kind=failed.failure.kind, attempts=attempts)
                raise RetryLater(f"{failed.failure.kind}: {failed.failure.errmsg}") from None
            result = result_of_failure(request.id, failed.failure, attempts)
            log.warning("notify_failed", kind=failed.failure.kind, errcode=failed.failure.errcode)
        done = await self._repository.finish(claim, result)
        assert done.result is not None  # noqa: S101 - finish() returns a done record
        await self.publish(done.result, corp_id=request.corp_id)

    async def _attempt(self, request: NotifyRequest, progress: _Progress) -> NotifyResult:
        """One try at ``request``; its final result, or an exception saying why not yet."""
        attempts = progress.claim.record.attempts
        if _expired(request, self._clock()):
            return expired_result(request.id, attempts)
        agent_id = await self._guard(self._agent_id(request))
        if agent_id is None:
            message = f"the app is not installed in corp {request.corp_id} (no agent id)"
            return failed_result(request.id, message, attempts=attempts)
        media_ids = await self._media(request, progress)
        path = path_of(request)
        interval: int | None = None
        if path == SEND_PATH:
            record = progress.claim.record
            interval = (
                record.duplicate_interval
                or pinned_send_options(
                    request.options, horizon_s=self._policy.retry_horizon_s
                ).duplicate_check_interval
            )
            if record.ambiguous and not retry_covered(
                interval, first_sent_at=record.first_sent_at or self._clock(), now=self._clock()
            ):
                message = (
                    "an earlier attempt may have been delivered and WeCom's duplicate check "
                    "can no longer cover a retry"
                )
                return failed_result(request.id, message, attempts=attempts)
            options = request.options.model_copy(
                update={"enable_duplicate_check": 1, "duplicate_check_interval": interval}
            )
            request = request.model_copy(update={"options": options})
        body = to_wecom_body(request, agent_id=agent_id, media_ids=media_ids)
        reservations = await self._reserve(request, agent_id) if path == SEND_PATH else []
        claim = progress.claim
        record = claim.record
        started = replace(
            record,
            attempts=record.attempts + 1,
            in_flight=True,
            first_sent_at=record.first_sent_at or self._clock(),
            duplicate_interval=interval,
        )
        updated = await self._repository.update(claim, started)
        if updated is None:
            await self._release(reservations)
            raise _Wait("claim_lost")
        progress.claim = updated
        answer = await self._guard(self._sender.send(request.corp_id, path, body))
        result = result_from_wecom_answer(request.id, answer, started.attempts)
        log.info("notify_sent", status=result.status, attempts=started.attempts, path=path)
        return result

    async def _agent_id(self, request: NotifyRequest) -> int | None:
        if request.agent_id is not None:
            return request.agent_id
        return await self._agents.agent_id(request.corp_id)

    @staticmethod
    async def _guard(call: Any) -> Any:
        """Await ``call``; a WeCom, token or auth failure becomes :class:`_Failed`."""
        try:
            return await call
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            raise _Failed(failure) from exc

    async def _media(self, request: NotifyRequest, progress: _Progress) -> dict[str, str]:
        """The media_id of every inline file: pinned in the request record (a retry must send
        the very same body for WeCom's duplicate check), else cached, else uploaded."""
        uploads = inline_media(request)
        claim = progress.claim
        media_ids = dict(claim.record.media_ids)
        for upload in uploads:
            if upload.key in media_ids:
                continue
            cached = await self._repository.get_media(request.corp_id, upload.key)
            if cached is None:
                cached = await self._guard(self._sender.upload(request.corp_id, upload))
                await self._repository.put_media(
                    request.corp_id, upload.key, cached, self._policy.media_margin_s
                )
                self._metrics.media.labels("uploaded").inc()
            else:
                self._metrics.media.labels("cached").inc()
            media_ids[upload.key] = cached
        if media_ids == claim.record.media_ids:
            return media_ids
        updated = await self._repository.update(claim, replace(claim.record, media_ids=media_ids))
        if updated is None:
            raise _Wait("claim_lost")
        progress.claim = updated
        return media_ids

    # --- send limits ----------------------------------------------------------------------

    def _counters(
        self, request: NotifyRequest, agent_id: int
    ) -> list[tuple[str, tuple[Window, ...], int]]:
        to = request.to
        prefix = f"{request.corp_id}:{agent_id}"
        counters = []
        if self._policy.member_windows:
            for user in sorted({user.lower() for user in to.users}):
                counters.append((f"member:{prefix}:{user}", self._policy.member_windows, 1))
        if self._policy.app_windows:
            weight = app_weight(
                len(to.users),
                len(to.parties),
                len(to.tags),
                all_members=to.all,
                group_size=self._policy.group_size,
            )
            counters.append((f"app:{prefix}", self._policy.app_windows, weight))
        return counters

    async def _reserve(self, request: NotifyRequest, agent_id: int) -> list[Reservation]:
        """Count this send on every limit it is subject to, waiting in the handler up to the
        hold time for room; a longer wait raises :class:`_Wait` (never a drop)."""
        counters = self._counters(request, agent_id)
        hold_until = self._clock() + self._policy.hold_s
        while True:
            taken: list[Reservation] = []
            wait: float | None = 0.0
            window = None
            for key, windows, weight in counters:
                outcome = await self._repository.reserve(
                    key, windows, weight, self._policy.margin_s
                )
                if isinstance(outcome, Reservation):
                    taken.append(outcome)
                    continue
                wait, window = outcome, key.split(":", 1)[0]
                break
            else:
                return taken
            await self._release(taken)
            if wait is None:
                raise _Failed(
                    Failure(
                        "permanent",
                        None,
                        "the message counts more person-times than a send limit allows at all",
                    )
                )
            now = self._clock()
            if now + wait > hold_until:
                self._metrics.limit_waits.labels(window or "", "retry").inc()
                raise _Wait("send_limit", window)
            self._metrics.limit_waits.labels(window or "", "held").inc()
            # Replicas woken by one freed bucket should not all race for it at once.
            await asyncio.sleep(wait + _HELD_SEND_JITTER.delay(1))

    async def _release(self, reservations: list[Reservation]) -> None:
        for reservation in reservations:
            await self._repository.release(reservation)

    # --- bookkeeping ----------------------------------------------------------------------

    async def _after_failure(self, claim: Claim, failure: Failure) -> Claim:
        """Record a failed attempt: not in flight any more, ambiguous if it may have been
        delivered; the claim is released for the retry."""
        record = claim.record
        updated = replace(
            record,
            in_flight=False,
            ambiguous=record.ambiguous or (failure.maybe_delivered and record.in_flight),
            claimed_until=0.0,
        )
        written = await self._repository.update(claim, updated)
        return written or claim

    async def _unclaim(self, claim: Claim) -> None:
        await self._repository.update(claim, replace(claim.record, claimed_until=0.0))

    async def _later(self, message: Message, wait: _Wait, *, last_delivery: bool) -> None:
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
            occurred_at=datetime.now(UTC),
        )
        await publish_event(self._bus, envelope)
        if count:
            self._metrics.results.labels(result.status).inc()


def _expired(request: NotifyRequest, now: float) -> bool:
    return request.deadline is not None and request.deadline.timestamp() <= now
