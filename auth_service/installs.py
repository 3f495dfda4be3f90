"""The authorization lifecycle: auth codes exchanged exactly once, installations recorded and
limited, grants changed, revoked and re-keyed, and the events that tell everyone else.

Never losing a permanent code is the first rule (it cannot be fetched again): the moment an
exchange succeeds its result is sealed into the auth code's record, before anything else, so
a crash afterwards resumes from the record instead of calling WeCom with a used code.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from auth_service.domain import (
    Admission,
    InstallationRecord,
    Ledger,
    Limits,
    Refusal,
    Usage,
    admit,
    is_test_install,
    quota_warnings,
    release_corp,
    release_member,
    with_member,
)
from auth_service.exchange import AuthApi, Exchanged
from auth_service.store import AuthRepository
from shared.bus.abc import RetryLater
from shared.contracts import (
    AuthChangedPayload,
    AuthGrantedPayload,
    AuthRejectedPayload,
    AuthRevokedPayload,
    Installation,
    Payload,
    QuotaWarningPayload,
    event_types,
    permanent_code_context,
    stable_event_id,
)
from shared.errors import ServiceError
from shared.storage.crypto import SecretBox
from shared.wecom.api import WeComApiError, WeComUnavailable

log = structlog.get_logger(__name__)

# Publishes one event: (type, payload, corp_id, occurred_at, source id for a stable event id).
Publish = Callable[[str, Payload, str | None, float, str], Awaitable[None]]
_OUTCOME_POLL_S = 0.05
# A claim younger than this is presumed alive (an exchange takes well under a second; the
# bus's retry delays of 1, 5 and 30 s carry a crashed holder's redelivery past it).
CLAIM_FRESH_S = 30.0
# Used, expired or unknown auth code (§12): expected when a code arrives twice, not a fault.
_CODE_UNUSABLE = frozenset({40029, 40078})


@dataclass(frozen=True)
class Outcome:
    status: str  # installed | refused | expired | ignored
    corp_id: str | None = None
    corp_name: str | None = None
    limit: str | None = None
    reason: str | None = None
    test: bool = False


def _maybe_used(exc: Exception) -> bool:
    """Whether a failed exchange may have reached WeCom (and used the code up)."""
    if isinstance(exc, WeComUnavailable):
        return exc.maybe_delivered
    return isinstance(exc, WeComApiError)


def event_id(event_type: str, source_id: str, corp_id: str | None) -> str:
    """A stable id per (type, source event, corp): republishing after a crash makes the same
    event, which consumers de-duplicate."""
    return stable_event_id(event_type, source_id, corp_id)


class Installs:
    def __init__(
        self,
        repository: AuthRepository,
        api: AuthApi,
        box: SecretBox,
        publish: Publish,
        *,
        limits: Limits,
        test_corp_ids: frozenset[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._api = api
        self._box = box
        self._publish = publish
        self.limits = limits
        self._test_corp_ids = test_corp_ids
        self._clock = clock

    # --- auth codes (create_auth, install.redirect, reset_permanent_code) -----------------

    async def on_auth_code(
        self,
        auth_code: str,
        *,
        source_id: str,
        occurred_at: float,
        state_test: bool = False,
        app_state: str | None = None,
        reset: bool = False,
    ) -> None:
        """Exchange ``auth_code`` once, whichever deliveries carry it and however often."""
        now = self._clock()
        record = await self._repository.claim_code(auth_code, source_id, now=now)
        if record is not None:
            if record.get("status") == "done" or record.get("event_id") != source_id:
                # Done already, or another event holds it: that event's handler finishes it
                # (a crash redelivers that message, which resumes from the record).
                log.info("auth_code_seen_again", status=record.get("status"))
                return
            if now - float(record.get("claimed_at", 0.0)) < CLAIM_FRESH_S:
                # This very event again while its claim is fresh: a twin delivery (a reload
                # republishes install.redirect under the same id) whose first copy is still
                # at work, or a redelivery right after a crash. Come back later: by then the
                # first copy is done, or the claim is old enough to be resumed.
                raise RetryLater("this auth code is being processed by another delivery")
        else:
            record = {"status": "claimed", "event_id": source_id, "claimed_at": now}
        if record["status"] == "claimed":
            exchanged_record = await self._exchange(
                auth_code, source_id, record, state_test, app_state
            )
            if exchanged_record is None:
                return
            record = exchanged_record
        exchanged = Exchanged.from_json(
            self._repository.open_exchange(auth_code, record["exchange"])
        )
        if not exchanged.complete:
            # The permanent code is stored; now the agent and members (v2). A failure here
            # is retried from the record, never by exchanging the used code again.
            exchanged = await self._api.complete(exchanged)
            record = {
                **record,
                "exchange": self._repository.seal_exchange(auth_code, exchanged.to_json()),
            }
            await self._repository.save_code(auth_code, record)
        if exchanged.auth_type is not None:
            log.info("auth_corp_info_auth_type", auth_type=exchanged.auth_type)  # §13.4: see
        if reset:
            outcome = await self._rekey(exchanged, source_id, occurred_at)
        else:
            outcome = await self._install(
                exchanged,
                source_id,
                occurred_at,
                bool(record.get("state_test")),
                record.get("app_state"),
            )
        await self._finish(auth_code, source_id, outcome)

    async def _exchange(
        self,
        auth_code: str,
        source_id: str,
        claim: dict[str, Any],
        state_test: bool,
        app_state: str | None,
    ) -> dict[str, Any] | None:
        """Call WeCom with the claimed code and store the sealed result at once; the new
        record, or None when the code turned out unusable (finished as ``expired``) or a twin
        delivery got there first."""
        try:
            exchanged = await self._api.exchange(auth_code)
        except (WeComUnavailable, ServiceError) as exc:
            if not _maybe_used(exc):
                # Nothing reached WeCom (no token, no connection): let the next delivery
                # claim the code afresh instead of waiting out the claim.
                await self._repository.release_code(auth_code, source_id)
            if not isinstance(exc, WeComApiError) or exc.errcode not in _CODE_UNUSABLE:
                raise
            latest = await self._repository.code_record(auth_code)
            if latest is not None and latest.get("status") in ("exchanged", "done"):
                # A twin delivery of this very event exchanged it meanwhile; it finishes.
                return None
            log.warning("auth_code_unusable", errcode=exc.errcode)
            await self._finish(auth_code, source_id, Outcome("expired"))
            return None
        record = {
            "status": "exchanged",
            "event_id": source_id,
            "claimed_at": claim.get("claimed_at", self._clock()),
            "state_test": state_test,
            "app_state": app_state,
            "exchange": self._repository.seal_exchange(auth_code, exchanged.to_json()),
        }
        await self._repository.save_code(auth_code, record)
        return record

    async def _finish(self, auth_code: str, source_id: str, outcome: Outcome) -> None:
        await self._repository.save_code(
            auth_code,
            {
                "status": "done",
                "event_id": source_id,
                "outcome": outcome.status,
                "corp_id": outcome.corp_id,
                "corp_name": outcome.corp_name,
                "limit": outcome.limit,
                "reason": outcome.reason,
                "test": outcome.test,
            },
        )

    async def _install(
        self,
        exchanged: Exchanged,
        source_id: str,
        occurred_at: float,
        state_test: bool,
        app_state: str | None = None,
    ) -> Outcome:
        corp_id, info = exchanged.corp_id, exchanged.info
        test = is_test_install(
            corp_id=corp_id, state_test=state_test, test_corp_ids=self._test_corp_ids
        )
        current = await self._repository.installation(corp_id)
        if current is not None and current.status != "active" and not current.applies(occurred_at):
            # Revoked (or refused) after this install happened: admitting it would count
            # slots no later event ever releases.
            log.info("install_older_than_state", corp_id=corp_id)
            return Outcome("ignored", corp_id, info.corp_name, test=test)
        installer = exchanged.installer_user_id
        first = [installer] if installer else []
        # The install itself is the corp and its installer: all or nothing.
        before, admission = await self._repository.update_ledger(
            lambda ledger: admit(ledger, self.limits, corp_id=corp_id, members=first, test=test)
        )
        refusal = admission.refusal
        admitted = list(first) if refusal is None else []
        ledger = admission.ledger
        if refusal is None:
            # Members the visible range shows beyond the installer (§8.5 allow_user) are
            # admitted one by one: one over a limit must not refuse the installer. They are
            # reported when their own install or subscribe event arrives.
            for member in sorted(set(info.members) - set(first)):
                extra = await self._admit_one(corp_id, member, test)
                if extra.admitted:
                    admitted.append(member)
                    ledger = extra.ledger
                else:
                    log.warning("member_not_counted", corp_id=corp_id, test=test)
        now = self._clock()

        def change(current: InstallationRecord | None) -> InstallationRecord | None:
            active = current is not None and current.status == "active"
            if current is not None and active:
                # Another member of an installed corp: the corp stays installed whatever
                # this member's outcome, and members merge whatever order events came in.
                if refusal is not None:
                    return None
                return replace(
                    current,
                    members=tuple(sorted(set(current.members) | set(admitted))),
                    corp_name=info.corp_name or current.corp_name,
                    agent_id=info.agent_id if info.agent_id is not None else current.agent_id,
                    permanent_code=exchanged.permanent_code,
                    changed_at=max(current.changed_at, occurred_at),
                    updated_at=now,
                )
            if current is not None and not current.applies(occurred_at):
                return None  # revoked or refused after this install happened
            return InstallationRecord(
                corp_id=corp_id,
                status="refused" if refusal is not None else "active",
                changed_at=occurred_at,
                installed_at=now,
                updated_at=now,
                corp_name=info.corp_name,
                agent_id=info.agent_id,
                auth_mode=info.auth_mode,
                test=test,
                reason=None if refusal is None else refusal.reason,
                members=tuple(sorted(admitted)),
                installer_user_id=installer,
                installer_open_userid=exchanged.installer_open_userid,
                edition=info.edition,
                # Kept even when refused: it cannot be fetched again.
                permanent_code=exchanged.permanent_code,
            )

        stored = await self._repository.update_installation(corp_id, change)
        if refusal is not None:
            await self._reject(
                corp_id, info.corp_name, test, refusal, source_id, occurred_at, app_state
            )
            log.warning("install_refused", corp_id=corp_id, limit=refusal.limit, test=test)
            return Outcome("refused", corp_id, info.corp_name, refusal.limit, refusal.reason, test)
        if stored is None:
            log.info("install_older_than_state", corp_id=corp_id)
            return Outcome("ignored", corp_id, info.corp_name, test=test)
        granted = AuthGrantedPayload(
            corp_id=corp_id,
            corp_name=stored.corp_name,
            agent_id=stored.agent_id,
            permanent_code_sealed=self._box.seal(
                exchanged.permanent_code, context=permanent_code_context(corp_id)
            ),
            test=test,
            installer_user_id=installer,
            installer_open_userid=exchanged.installer_open_userid,
            auth_mode=info.auth_mode,
            app_state=app_state,
        )
        await self._publish(event_types.AUTH_GRANTED, granted, corp_id, occurred_at, source_id)
        await self._warn(before.usage(self.limits.policy), ledger, source_id, occurred_at)
        log.info("installed", corp_id=corp_id, test=test, members=len(stored.members))
        return Outcome("installed", corp_id, stored.corp_name, test=test)

    async def _admit_one(self, corp_id: str, user_id: str, test: bool) -> Admission:
        _, admission = await self._repository.update_ledger(
            lambda ledger: admit(ledger, self.limits, corp_id=corp_id, members=[user_id], test=test)
        )
        return admission

    async def _rekey(self, exchanged: Exchanged, source_id: str, occurred_at: float) -> Outcome:
        """reset_permanent_code: the corp's old code is void; keep the new one (§5.5)."""
        corp_id = exchanged.corp_id

        def change(current: InstallationRecord | None) -> InstallationRecord | None:
            if current is None or not current.applies(occurred_at):
                return None
            return replace(
                current,
                permanent_code=exchanged.permanent_code,
                changed_at=occurred_at,
                updated_at=self._clock(),
            )

        stored = await self._repository.update_installation(corp_id, change)
        if stored is None:
            log.warning("reset_permanent_code_without_installation", corp_id=corp_id)
            return Outcome("ignored", corp_id)
        await self._changed(stored, source_id, occurred_at, new_code=exchanged.permanent_code)
        return Outcome("installed", corp_id, stored.corp_name, test=stored.test)

    # --- change_auth, cancel_auth, members ------------------------------------------------

    async def on_change_auth(self, corp_id: str, *, source_id: str, occurred_at: float) -> None:
        """Re-read the grant (§5.3) and apply who has the app now."""
        current = await self._repository.installation(corp_id)
        if current is None or current.status != "active" or current.permanent_code is None:
            log.info("change_auth_for_inactive_corp", corp_id=corp_id)
            return
        if not current.applies(occurred_at):
            return
        info = await self._api.auth_info(corp_id, current.permanent_code)
        added = sorted(set(info.members) - set(current.members))
        removed = sorted(set(current.members) - set(info.members))
        refusal: Refusal | None = None
        if added:
            before, admission = await self._repository.update_ledger(
                lambda ledger: admit(
                    ledger, self.limits, corp_id=corp_id, members=added, test=current.test
                )
            )
            refusal = admission.refusal
            if refusal is None:
                await self._warn(
                    before.usage(self.limits.policy), admission.ledger, source_id, occurred_at
                )
        if removed:
            await self._repository.update_ledger(lambda ledger: _released(ledger, corp_id, removed))
        members = set(current.members) - set(removed)
        if refusal is None:
            members |= set(added)

        def change(record: InstallationRecord | None) -> InstallationRecord | None:
            if record is None or record.status != "active" or not record.applies(occurred_at):
                return None
            return replace(
                record,
                corp_name=info.corp_name or record.corp_name,
                agent_id=info.agent_id if info.agent_id is not None else record.agent_id,
                auth_mode=info.auth_mode,
                edition=info.edition,
                members=tuple(sorted(members)),
                changed_at=occurred_at,
                updated_at=self._clock(),
            )

        stored = await self._repository.update_installation(corp_id, change)
        if refusal is not None:
            await self._reject(
                corp_id, current.corp_name, current.test, refusal, source_id, occurred_at
            )
        if stored is not None:
            await self._changed(stored, source_id, occurred_at)

    async def on_cancel_auth(self, corp_id: str, *, source_id: str, occurred_at: float) -> None:
        """The corp uninstalled (§5.4): its code is void; keep a revoked tombstone so a late,
        older event cannot resurrect it."""

        def change(record: InstallationRecord | None) -> InstallationRecord | None:
            if record is None or not record.applies(occurred_at) or record.status == "revoked":
                return None
            return replace(
                record,
                status="revoked",
                reason="uninstalled",
                permanent_code=None,
                members=(),
                changed_at=occurred_at,
                updated_at=self._clock(),
            )

        stored = await self._repository.update_installation(corp_id, change)
        if stored is None:
            current = await self._repository.installation(corp_id)
            # Revoked by this very event on an earlier delivery that died before releasing
            # the ledger or publishing: finish those steps (both are idempotent).
            redelivered = (
                current is not None
                and current.status == "revoked"
                and math.floor(current.changed_at) == math.floor(occurred_at)
            )
            if not redelivered:
                return
        await self._repository.update_ledger(lambda ledger: _released_corp(ledger, corp_id))
        payload = AuthRevokedPayload(corp_id=corp_id, reason="uninstalled")
        await self._publish(event_types.AUTH_REVOKED, payload, corp_id, occurred_at, source_id)
        log.info("uninstalled", corp_id=corp_id)

    async def on_member(
        self, corp_id: str, user_id: str, *, present: bool, source_id: str, occurred_at: float
    ) -> None:
        """A member gained (subscribe) or lost (unsubscribe) the app. WeCom may tell of later
        members only this way (§15 q4), so the ledger counts them from here too."""
        current = await self._repository.installation(corp_id)
        if current is None or current.status != "active" or not current.applies(occurred_at):
            return
        if (user_id in current.members) == present:
            return
        if present:
            before, admission = await self._repository.update_ledger(
                lambda ledger: admit(
                    ledger, self.limits, corp_id=corp_id, members=[user_id], test=current.test
                )
            )
            if admission.refusal is not None:
                await self._reject(
                    corp_id,
                    current.corp_name,
                    current.test,
                    admission.refusal,
                    source_id,
                    occurred_at,
                )
                return
            await self._warn(
                before.usage(self.limits.policy), admission.ledger, source_id, occurred_at
            )
        else:
            await self._repository.update_ledger(
                lambda ledger: _released(ledger, corp_id, [user_id])
            )

        def change(record: InstallationRecord | None) -> InstallationRecord | None:
            if record is None or record.status != "active" or not record.applies(occurred_at):
                return None
            return replace(
                record,
                members=with_member(record.members, user_id, present=present),
                changed_at=occurred_at,
                updated_at=self._clock(),
            )

        stored = await self._repository.update_installation(corp_id, change)
        if stored is not None:
            await self._changed(stored, source_id, occurred_at)

    # --- events out -----------------------------------------------------------------------

    async def _changed(
        self,
        record: InstallationRecord,
        source_id: str,
        occurred_at: float,
        *,
        new_code: str | None = None,
    ) -> None:
        payload = AuthChangedPayload(
            corp_id=record.corp_id,
            corp_name=record.corp_name,
            agent_id=record.agent_id,
            members=list(record.members),
            permanent_code_sealed=None
            if new_code is None
            else self._box.seal(new_code, context=permanent_code_context(record.corp_id)),
        )
        await self._publish(
            event_types.AUTH_CHANGED, payload, record.corp_id, occurred_at, source_id
        )

    async def _reject(
        self,
        corp_id: str,
        corp_name: str | None,
        test: bool,
        refusal: Refusal,
        source_id: str,
        occurred_at: float,
        app_state: str | None = None,
    ) -> None:
        payload = AuthRejectedPayload(
            corp_id=corp_id,
            corp_name=corp_name,
            user_id=refusal.user_id,
            test=test,
            limit=refusal.limit,
            reason=refusal.reason,
            app_state=app_state,
        )
        await self._publish(event_types.AUTH_REJECTED, payload, corp_id, occurred_at, source_id)

    async def _warn(
        self, before: Usage, ledger: Ledger, source_id: str, occurred_at: float
    ) -> None:
        after = ledger.usage(self.limits.policy)
        for warning in quota_warnings(before, after, self.limits):
            payload = QuotaWarningPayload(
                limit=warning.limit, used=warning.used, max=warning.max, level=warning.level
            )
            log.warning(
                "install_quota_warning",
                limit=warning.limit,
                used=warning.used,
                max=warning.max,
                level=warning.level,
            )
            await self._publish(
                event_types.AUTH_QUOTA_WARNING,
                payload,
                None,
                occurred_at,
                f"{source_id}/{warning.limit}",
            )

    # --- queries (rpc.auth) ---------------------------------------------------------------

    async def outcome(self, auth_code: str, wait_s: float) -> dict[str, Any]:
        """What became of an install's auth code, waiting up to ``wait_s`` for it to finish."""
        deadline = time.monotonic() + wait_s
        while True:
            record = await self._repository.code_record(auth_code)
            if record is not None and record.get("status") == "done":
                return {
                    "status": record.get("outcome"),
                    "corp_id": record.get("corp_id"),
                    "corp_name": record.get("corp_name"),
                    "limit": record.get("limit"),
                    "reason": record.get("reason"),
                    "test": bool(record.get("test")),
                }
            if time.monotonic() >= deadline:
                return {"status": "processing" if record is not None else "unknown"}
            await asyncio.sleep(_OUTCOME_POLL_S)

    async def quota(self) -> dict[str, Any]:
        usage = (await self._repository.ledger()).usage(self.limits.policy)
        return {
            "policy": self.limits.policy,
            "corps": {"used": usage.corps, "limit": self.limits.corps},
            "users": {"used": usage.users, "limit": self.limits.users},
            "test_accounts": {"used": usage.test_accounts, "limit": self.limits.test_accounts},
        }


def view(record: InstallationRecord) -> Installation:
    """The public shape of an installation (design.md ``GET /api/v1/installations``)."""
    return Installation(
        corp_id=record.corp_id,
        corp_name=record.corp_name,
        agent_id=record.agent_id,
        members=list(record.members),
        test=record.test,
        status=record.status,
        reason=record.reason,
        installed_at=datetime.fromtimestamp(record.installed_at, UTC),
        updated_at=datetime.fromtimestamp(record.updated_at, UTC),
    )


def _released(ledger: Ledger, corp_id: str, users: list[str]) -> Admission:
    for user in users:
        ledger = release_member(ledger, corp_id, user)
    return Admission(ledger)


def _released_corp(ledger: Ledger, corp_id: str) -> Admission:
    return Admission(release_corp(ledger, corp_id))
