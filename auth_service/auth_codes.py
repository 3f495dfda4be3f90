"""Auth codes exchanged exactly once: whichever deliveries carry a code and however often, one
claims it, WeCom is asked once, and the sealed result is stored before anything else.

Never losing a permanent code is the first rule (it cannot be fetched again): a crash after
the exchange resumes from the record instead of calling WeCom with a used code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog
from prometheus_client import Counter

from auth_service.domain import LOST_REASON, CodeRecord, Outcome
from auth_service.exchange import AuthApi, Exchanged
from auth_service.metrics import AuthMetrics
from auth_service.store import AuthRepository
from shared.bus.abc import RetryLater
from shared.errors import ServiceError
from shared.metrics import new_registry
from shared.wecom.api import WeComApiError, WeComUnavailable

log = structlog.get_logger(__name__)

_OUTCOME_POLL_S = 0.05
# A claim younger than this is presumed alive (an exchange takes well under a second; the
# bus's retry delays of 1, 5 and 30 s carry a crashed holder's redelivery past it).
CLAIM_FRESH_S = 30.0
# Used, expired or unknown auth code (§12): expected when a code arrives twice, not a fault.
_CODE_UNUSABLE = frozenset({40029, 40078})

# What to do with a code's complete exchange result: (result, its record) → the outcome.
Apply = Callable[[Exchanged, CodeRecord], Awaitable[Outcome]]
# Told of a lost install, with its app_state.
Lost = Callable[[str | None], Awaitable[None]]


def _maybe_used(exc: Exception) -> bool:
    """Whether a failed exchange may have reached WeCom (and used the code up)."""
    if isinstance(exc, WeComUnavailable):
        return exc.maybe_delivered
    return isinstance(exc, WeComApiError)


class AuthCodes:
    """The exactly-once exchange of auth codes and their recorded outcomes."""

    def __init__(
        self,
        repository: AuthRepository,
        api: AuthApi,
        *,
        exchanges: Counter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._api = api
        self._clock = clock
        # By outcome (see auth_service.metrics); a private one when not wired.
        self._exchanges = exchanges or AuthMetrics.create(new_registry()).exchanges

    async def exchange_once(
        self,
        auth_code: str,
        *,
        source_id: str,
        apply: Apply,
        lost: Lost,
        state: str | None = None,
        state_test: bool = False,
        app_state: str | None = None,
    ) -> None:
        """Exchange ``auth_code`` once and ``apply`` the result, recording the outcome.

        ``state`` is our signed install state that came with the code (its ``state_test``
        and ``app_state`` are what it says): trusted only for the one code it completes.
        ``lost`` is told of an install whose result was lost (see :meth:`_exchange`).
        """
        now = self._clock()
        record = await self._repository.claim_code(auth_code, source_id, now=now)
        if record is not None:
            if record.status == "done" or record.event_id != source_id:
                # Done already, or another event holds it: that event's handler finishes it
                # (a crash redelivers that message, which resumes from the record).
                log.info("auth_code_seen_again", status=record.status)
                return
            if now - record.claimed_at < CLAIM_FRESH_S:
                # This very event again while its claim is fresh: a twin delivery (a reload
                # republishes install.redirect under the same id) whose first copy is still
                # at work, or a redelivery right after a crash. Come back later: by then the
                # first copy is done, or the claim is old enough to be resumed.
                raise RetryLater("this auth code is being processed by another delivery")
        else:
            record = CodeRecord("claimed", source_id, claimed_at=now)
        if record.status in ("claimed", "sent"):
            exchanged_record = await self._exchange(
                auth_code, record, state, state_test, app_state, lost
            )
            if exchanged_record is None:
                return
            record = exchanged_record
        if record.exchange is None:
            raise RuntimeError("an exchanged auth-code record without its result")
        exchanged = Exchanged.from_json(self._repository.open_exchange(auth_code, record.exchange))
        if not exchanged.complete:
            # The permanent code is stored; now the agent and members (v2). A failure here
            # is retried from the record, never by exchanging the used code again.
            exchanged = await self._api.complete(exchanged)
            record = replace(
                record, exchange=self._repository.seal_exchange(auth_code, exchanged.to_json())
            )
            await self._repository.save_code(auth_code, record)
        outcome = await apply(exchanged, record)
        await self._finish(auth_code, source_id, outcome)

    async def _exchange(
        self,
        auth_code: str,
        claim: CodeRecord,
        state: str | None,
        state_test: bool,
        app_state: str | None,
        lost: Lost,
    ) -> CodeRecord | None:
        """Call WeCom with the claimed code and store the sealed result at once; the new
        record, or None when the code turned out unusable (finished as ``expired``, or
        ``lost``) or a twin delivery got there first.

        The record says ``sent`` before WeCom is called. A resumed claim that finds it so
        does not know whether WeCom answered the crashed attempt: it asks again, and a "code
        used" answer then means WeCom consumed the code and its result (the permanent code,
        which cannot be fetched again) was lost with the crash.
        """
        source_id, resumed = claim.event_id, claim.status == "sent"
        if resumed:
            state_test, app_state = claim.state_test, claim.app_state
        sent = CodeRecord(
            "sent",
            source_id,
            claimed_at=self._clock(),
            state_test=state_test,
            app_state=app_state,
        )
        await self._repository.save_code(auth_code, sent)
        try:
            exchanged = await self._api.exchange(auth_code)
        except (WeComUnavailable, ServiceError) as exc:
            if not _maybe_used(exc):
                # Nothing reached WeCom (no token, no connection): let the next delivery
                # claim the code afresh instead of waiting out the claim.
                await self._repository.release_code(auth_code, source_id)
            if not isinstance(exc, WeComApiError) or exc.errcode not in _CODE_UNUSABLE:
                self._exchanges.labels("failed" if _maybe_used(exc) else "not_sent").inc()
                raise
            latest = await self._repository.code_record(auth_code)
            if latest is not None and latest.status in ("exchanged", "done"):
                # A twin delivery of this very event exchanged it meanwhile; it finishes.
                return None
            self._exchanges.labels("lost" if resumed else "unusable").inc()
            if resumed:
                # An answer, not a fault of ours to trace: the crash was earlier.
                log.error("install_lost", errcode=exc.errcode, app_state=app_state)  # noqa: TRY400
                await lost(app_state)
                await self._finish(auth_code, source_id, Outcome("lost", reason=LOST_REASON))
                return None
            log.warning("auth_code_unusable", errcode=exc.errcode)
            await self._finish(auth_code, source_id, Outcome("expired"))
            return None
        self._exchanges.labels("exchanged").inc()
        if state is not None and not await self._state_completes(auth_code, state, exchanged):
            state_test, app_state = False, None
        record = CodeRecord(
            "exchanged",
            source_id,
            claimed_at=sent.claimed_at,
            state_test=state_test,
            app_state=app_state,
            exchange=self._repository.seal_exchange(auth_code, exchanged.to_json()),
        )
        await self._repository.save_code(auth_code, record)
        return record

    async def _state_completes(self, auth_code: str, state: str, exchanged: Exchanged) -> bool:
        """Whether ``state`` belongs to this code: WeCom echoes the install link's state in
        get_permanent_code (§8.5), and a state completes at most one code. Otherwise a test
        state carried over to another install would make it a test one."""
        if exchanged.state is not None and exchanged.state != state:
            log.warning("install_state_not_this_codes", corp_id=exchanged.corp_id)
            return False
        if not await self._repository.bind_state(state, auth_code):
            log.warning("install_state_already_used", corp_id=exchanged.corp_id)
            return False
        return True

    async def _finish(self, auth_code: str, source_id: str, outcome: Outcome) -> None:
        await self._repository.save_code(auth_code, CodeRecord("done", source_id, outcome=outcome))

    async def outcome(self, auth_code: str, wait_s: float) -> dict[str, Any]:
        """What became of an install's auth code (the ``install_outcome`` reply), waiting up
        to ``wait_s`` for it to finish."""
        deadline = self._clock() + wait_s
        while True:
            record = await self._repository.code_record(auth_code)
            if record is not None and record.outcome is not None:
                done = record.outcome
                return {
                    "status": done.status,
                    "corp_id": done.corp_id,
                    "corp_name": done.corp_name,
                    "limit": done.limit,
                    "reason": done.reason,
                    "test": done.test,
                }
            if self._clock() >= deadline:
                return {"status": "processing" if record is not None else "unknown"}
            await asyncio.sleep(_OUTCOME_POLL_S)
