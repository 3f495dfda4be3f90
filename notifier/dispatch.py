"""Carrying out one request: claim it, try it (expiry, agent id, media, limits, the WeCom
call), and record the outcome; at most one WeCom send per request id.

A failure after which the message may have been delivered is retried only with WeCom's
duplicate check on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Final

import structlog

from notifier.domain import (
    DuplicatePlan,
    EarlierSend,
    NotifierPolicy,
    RequestRecord,
    expired_result,
    failed_result,
    is_last_attempt,
    plan_duplicate_check,
    result_from_wecom_answer,
    result_of_failure,
    retry_covered,
)
from notifier.limits import Booking, SendLimits
from notifier.media import MediaResolver
from notifier.metrics import NotifierMetrics
from notifier.outcomes import Failed, Postpone, Progress, Wait, guard
from notifier.sender import SEND_PATH, WeComSender, path_of
from notifier.store import Done, NotifierRepository
from notifier.wecom_body import content_digest, recipient_keys, to_wecom_body
from shared.auth_client import AuthClient
from shared.bus.abc import RetryLater
from shared.notify import NotifyRequest, NotifyResult

log = structlog.get_logger(__name__)

# How long after another owner's lease ends a waiting delivery looks again.
CLAIM_SLACK_S: Final = 0.5


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
        """The agent id of the app in ``corp_id``; None when it is not (actively) installed."""
        cached = self._cache.get(corp_id)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        installation = await self._auth.installation(corp_id)
        if installation is None or installation.status != "active":
            return None
        if installation.agent_id is not None:
            self._cache[corp_id] = (installation.agent_id, self._clock() + self._ttl_s)
        return installation.agent_id


@dataclass(frozen=True, slots=True)
class Outcome:
    """A request's final result; ``repeated`` when it was finished before (republish only)."""

    result: NotifyResult
    repeated: bool = False


class Dispatcher:
    """Claims, tries and finishes requests (see docs/notifier.md, "Idempotency")."""

    def __init__(
        self,
        repository: NotifierRepository,
        sender: WeComSender,
        agents: InstalledAgents,
        limits: SendLimits,
        media: MediaResolver,
        metrics: NotifierMetrics,
        policy: NotifierPolicy,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self._order = KeyedLocks()
        self._repository = repository
        self._sender = sender
        self._agents = agents
        self._limits = limits
        self._media = media
        self._metrics = metrics
        self._policy = policy
        self._clock = clock

    async def run(self, request: NotifyRequest, *, last_delivery: bool) -> Outcome:
        """Carry out ``request`` to its final result.

        Raises:
            Wait: the claim was lost midway; never a failure.
            Postpone: a send limit has no room, or another delivery owns the request, until
                ``due_at``.
            RetryLater: a retryable failure, to be tried again through the bus.
        """
        # Taken before the first await, in delivery order: sends to one member leave in the
        # order they were requested (within this process).
        async with self._order.hold(_member_keys(request)):
            return await self._run(request, last_delivery=last_delivery)

    async def _run(self, request: NotifyRequest, *, last_delivery: bool) -> Outcome:
        owner = uuid.uuid4().hex
        claimed = await self._repository.claim(request.id, owner, self._policy.claim_s)
        if claimed is None:
            # Another delivery owns it (a duplicate, or the redelivery of a crashed owner's
            # work): look again just after its lease ends; a live owner renews it meanwhile.
            current = await self._repository.get_request(request.id)
            until = self._clock() if current is None else current.claimed_until
            self._metrics.retries.labels("claimed_elsewhere").inc()
            raise Postpone(max(until, self._clock()) + CLAIM_SLACK_S, "claim")
        if isinstance(claimed, Done):
            # Done before: republish the stored result, send nothing.
            self._metrics.republished.inc()
            log.info("notify_request_repeated", status=claimed.result.status)
            return Outcome(claimed.result, repeated=True)
        progress = Progress(claimed)
        try:
            async with self._heartbeat(progress):
                result = await self._attempt(request, progress)
        except (Wait, Postpone):
            await progress.write(self._repository, lambda r: replace(r, claimed_until=0.0))
            raise
        except Failed as failed:
            await self._after_failure(progress, failed)
            attempts = progress.claim.record.attempts
            failure = failed.failure
            if failure.is_retryable and not is_last_attempt(
                attempts, self._policy.max_attempts, last_delivery=last_delivery
            ):
                self._metrics.retries.labels(failure.kind).inc()
                log.info("notify_retrying", kind=failure.kind, attempts=attempts)
                raise RetryLater(f"{failure.kind}: {failure.errmsg}") from None
            result = result_of_failure(request.id, failure, attempts)
            log.info("notify_failed", kind=failure.kind, errcode=failure.errcode)
        async with progress.lock:
            progress.released = True
            done = await self._repository.finish(progress.claim, result, corp_id=request.corp_id)
        return Outcome(done.result)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, progress: Progress) -> AsyncIterator[None]:
        """Renew the claim every third of its lease while this delivery works on it, so that
        a live owner keeps it and a dead one's lease runs out within ``claim_s``."""
        interval = self._policy.claim_s / 3

        async def beat() -> None:
            while True:
                await self._sleep(interval)
                until = self._clock() + self._policy.claim_s
                if not await progress.renew(self._repository, until):
                    return

        task = asyncio.create_task(beat(), name="notify-claim-heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _attempt(self, request: NotifyRequest, progress: Progress) -> NotifyResult:
        """One try at ``request``; its final result, or an exception saying why not yet."""
        attempts = progress.claim.record.attempts
        if _expired(request, self._clock()):
            return expired_result(request.id, attempts)
        agent_id = await guard(self._agent_id(request))
        if agent_id is None:
            message = f"the app is not installed in corp {request.corp_id} (no agent id)"
            return failed_result(request.id, message, attempts=attempts)
        media_ids = await self._media.media_ids(request, progress)
        path = path_of(request)
        plan: DuplicatePlan | None = None
        content = ""
        booking = None
        if path == SEND_PATH:
            # The slot first: the duplicate check is planned (and the send remembered) at
            # the moment the message goes out.
            booking = await self._booking(request, agent_id, progress)
            body = to_wecom_body(request, agent_id=agent_id, media_ids=media_ids)
            content = content_digest(request.corp_id, body)
            plan = await self._duplicate_plan(request, progress.claim.record, content)
            record = progress.claim.record
            if record.ambiguous:
                refusal = _ambiguous_refusal(plan, record, self._clock())
                if refusal is not None:
                    await self._limits.release(booking)
                    return failed_result(request.id, refusal, attempts=attempts)
            options = request.options.model_copy(
                update={
                    "enable_duplicate_check": 1 if plan.check else 0,
                    "duplicate_check_interval": plan.interval,
                }
            )
            request = request.model_copy(update={"options": options})
        body = to_wecom_body(request, agent_id=agent_id, media_ids=media_ids)
        now = self._clock()

        def started(record: RequestRecord) -> RequestRecord:
            return replace(
                record,
                attempts=record.attempts + 1,
                in_flight=True,
                first_sent_at=record.first_sent_at or now,
                duplicate_interval=None if plan is None else plan.interval,
                duplicate_check=None if plan is None else plan.check,
                retry_safe=True if plan is None else plan.retry_safe,
                slot_at=None,
                booked_at=None,
            )

        if not await progress.write(self._repository, started):
            await self._limits.release(booking)
            raise Wait("claim_lost")
        attempt = progress.claim.record.attempts
        try:
            answer = await guard(self._sender.send(request.corp_id, path, body))
        finally:
            if booking is not None:
                await self._limits.sent(booking, self._clock())
        to = request.to
        result = result_from_wecom_answer(
            request.id,
            answer,
            attempt,
            duplicate_check=plan is not None and plan.check,
            duplicate_users=() if plan is None else plan.duplicate_users,
            only_users=None if to.all or to.parties or to.tags else to.users,
        )
        log.info("notify_sent", status=result.status, attempts=attempt, path=path)
        return result

    async def _booking(self, request: NotifyRequest, agent_id: int, progress: Progress) -> Booking:
        """This attempt's place under the send limits, once its slot has come: booked now or
        by an earlier delivery (kept in the record), waited for in the handler when it is
        within the hold time, else handed to the schedule (:class:`Postpone`)."""
        record = progress.claim.record
        if record.slot_at is not None and record.booked_at is not None:
            booking = self._limits.booked(
                request, agent_id, slot_at=record.slot_at, booked_at=record.booked_at
            )
        else:
            booking = await self._limits.book(request, agent_id)
        wait = booking.slot_at - self._clock()
        if wait > self._policy.hold_s:
            kept = await progress.write(
                self._repository,
                lambda r: replace(r, slot_at=booking.slot_at, booked_at=booking.booked_at),
            )
            if not kept:
                await self._limits.release(booking)
                raise Wait("claim_lost")
            self._metrics.limit_waits.labels("member", "scheduled").inc()
            # Delivered again a little before the slot, to wait out the rest here.
            raise Postpone(booking.slot_at - self._policy.hold_s / 2, "member")
        if wait > 0:
            self._metrics.limit_waits.labels("member", "held").inc()
            await self._sleep(wait)
        return booking

    async def _duplicate_plan(
        self, request: NotifyRequest, record: RequestRecord, content: str
    ) -> DuplicatePlan:
        """The duplicate check of this attempt: planned at the first (and the send remembered
        before the call, as a send that may go out counts as sent), then kept as pinned so
        that every retry sends the same body."""
        keys = recipient_keys(request.to)

        def plan_of(earlier: Mapping[str, list[EarlierSend]], now: float) -> DuplicatePlan:
            return plan_duplicate_check(
                request.options,
                request_id=request.id,
                recipients=keys,
                earlier=earlier,
                now=now,
                horizon_s=self._policy.retry_horizon_s,
            )

        # Records from before the check was planned had it always on.
        pinned = record.duplicate_check
        if pinned is None and record.duplicate_interval is not None:
            pinned = True
        if pinned is None or record.duplicate_interval is None:
            return await self._repository.plan_send(content, keys, request.id, plan_of)
        plan = plan_of(await self._repository.recent_sends(content), self._clock())
        return replace(
            plan,
            check=pinned,
            interval=record.duplicate_interval,
            retry_safe=record.retry_safe and pinned,
            duplicate_users=plan.duplicate_users if pinned else (),
        )

    async def _agent_id(self, request: NotifyRequest) -> int | None:
        if request.agent_id is not None:
            return request.agent_id
        return await self._agents.agent_id(request.corp_id)

    async def _after_failure(self, progress: Progress, failed: Failed) -> None:
        """Record a failed attempt: not in flight any more, ambiguous if it may have been
        delivered; the claim is released for the retry."""

        def failed_attempt(record: RequestRecord) -> RequestRecord:
            return replace(
                record,
                in_flight=False,
                ambiguous=record.ambiguous or (failed.failure.maybe_delivered and record.in_flight),
                claimed_until=0.0,
            )

        await progress.write(self._repository, failed_attempt)


class KeyedLocks:
    """First-come-first-served locks by key, forgotten when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: list[str]) -> AsyncIterator[None]:
        """Hold every lock of ``keys`` (taken in sorted order: no deadlock)."""
        ordered = sorted(set(keys))
        for key in ordered:
            self._users[key] = self._users.get(key, 0) + 1
            self._locks.setdefault(key, asyncio.Lock())
        taken: list[str] = []
        try:
            for key in ordered:
                await self._locks[key].acquire()
                taken.append(key)
            yield
        finally:
            for key in taken:
                self._locks[key].release()
            for key in ordered:
                self._users[key] -= 1
                if self._users[key] == 0:
                    del self._users[key], self._locks[key]


def _member_keys(request: NotifyRequest) -> list[str]:
    if path_of(request) != SEND_PATH:
        return []
    return [f"{request.corp_id}:{user.lower()}" for user in request.to.users]


def _ambiguous_refusal(plan: DuplicatePlan, record: RequestRecord, now: float) -> str | None:
    """Why a retry after an ambiguous failure must not go out, or None when it may."""
    if not plan.retry_safe:
        return (
            "an earlier attempt may have been delivered and it went out without WeCom's "
            "duplicate check, so a retry could deliver twice"
        )
    first = record.first_sent_at or now
    if not retry_covered(plan.interval, first_sent_at=first, now=now):
        return (
            "an earlier attempt may have been delivered and WeCom's duplicate check "
            "can no longer cover a retry"
        )
    return None


def _expired(request: NotifyRequest, now: float) -> bool:
    return request.deadline is not None and request.deadline.timestamp() <= now
