"""The installation life cycle: installs admitted against the limits and recorded, grants
changed, revoked and re-keyed, members joining and leaving, and the ``auth.*`` events that
tell everyone else. The merge rules themselves are pure (``auth_service.domain``)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog

from auth_service.domain import (
    LOST_REASON,
    Admission,
    Grant,
    InstallationRecord,
    Ledger,
    Limits,
    Outcome,
    Refusal,
    Usage,
    admit,
    installed,
    is_test_install,
    member_changed,
    quota_warnings,
    reclassify,
    regranted,
    rekeyed,
    released,
    released_corp,
    revoked,
)
from auth_service.exchange import AuthApi, Exchanged
from auth_service.metrics import AuthMetrics, kind_of
from auth_service.store import AuthRepository
from shared.contracts import (
    AuthChangedPayload,
    AuthGrantedPayload,
    AuthLostPayload,
    AuthRejectedPayload,
    AuthRevokedPayload,
    Installation,
    Payload,
    QuotaWarningPayload,
    event_types,
    permanent_code_context,
    stable_event_id,
)
from shared.metrics import new_registry
from shared.storage.crypto import SecretBox

log = structlog.get_logger(__name__)

# Publishes one event: (type, payload, corp_id, occurred_at, source id for a stable event id).
Publish = Callable[[str, Payload, str | None, float, str], Awaitable[None]]


def event_id(event_type: str, source_id: str, corp_id: str | None) -> str:
    """A stable id per (type, source event, corp): republishing after a crash makes the same
    event, which consumers de-duplicate."""
    return stable_event_id(event_type, source_id, corp_id)


class Lifecycle:
    """What each install event does to the installations and the ledger."""

    def __init__(
        self,
        repository: AuthRepository,
        api: AuthApi,
        box: SecretBox,
        publish: Publish,
        *,
        limits: Limits,
        test_corp_ids: frozenset[str],
        test_accounts: frozenset[str] = frozenset(),
        metrics: AuthMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repository = repository
        self._test_accounts = test_accounts
        self.metrics = metrics or AuthMetrics.create(new_registry())
        self._api = api
        self._box = box
        self._publish = publish
        self.limits = limits
        self._test_corp_ids = test_corp_ids
        self._clock = clock

    # --- admission ------------------------------------------------------------------------

    async def _admit(
        self,
        corp_id: str,
        members: list[str],
        test: bool,
        *,
        corp_name: str | None,
        source_id: str,
        occurred_at: float,
        report_refusal: bool = True,
    ) -> Admission:
        """Admit ``members`` of ``corp_id`` against the limits, then warn of the thresholds
        crossed, or refuse (``auth.rejected``, unless the caller reports it itself)."""
        before, admission = await self._repository.update_ledger(
            lambda ledger: admit(ledger, self.limits, corp_id=corp_id, members=members, test=test)
        )
        refused = admission.refusal
        self.metrics.admissions.labels(
            kind_of(test),
            "admitted" if refused is None else "refused",
            "" if refused is None else refused.limit,
        ).inc()
        self.metrics.record_quota(admission.ledger.usage(self.limits.policy), self.limits)
        if admission.refusal is None:
            await self._warn(
                before.usage(self.limits.policy), admission.ledger, source_id, occurred_at
            )
        elif report_refusal:
            await self._reject(corp_id, corp_name, test, admission.refusal, source_id, occurred_at)
        return admission

    # --- installs and re-keys -------------------------------------------------------------

    async def install(
        self,
        exchanged: Exchanged,
        source_id: str,
        occurred_at: float,
        state_test: bool,
        app_state: str | None = None,
    ) -> Outcome:
        """Admit and record an exchanged install; ``auth.granted`` or ``auth.rejected``."""
        corp_id, info = exchanged.corp_id, exchanged.info
        installer = exchanged.installer_user_id
        test = is_test_install(
            corp_id=corp_id,
            state_test=state_test,
            test_corp_ids=self._test_corp_ids,
            user_id=installer,
            test_accounts=self._test_accounts,
        )
        if exchanged.auth_type is not None:
            # Undocumented (§13.4: only SKIT's sample shows it): logged next to what we
            # concluded, never used, until its meaning is known.
            log.info(
                "auth_corp_info_auth_type",
                corp_id=corp_id,
                auth_type=exchanged.auth_type,
                test=test,
            )
        current = await self._repository.installation(corp_id)
        inactive = current is not None and current.status not in ("active", "lost")
        if current is not None and inactive and not current.applies(occurred_at):
            # Revoked (or refused) after this install happened: admitting it would count
            # slots no later event ever releases.
            log.info("install_older_than_state", corp_id=corp_id)
            return Outcome("ignored", corp_id, info.corp_name, test=test)
        first = [installer] if installer else []
        # The install itself is the corp and its installer: all or nothing. Its refusal is
        # reported once the refused installation is recorded.
        admission = await self._admit(
            corp_id,
            first,
            test,
            corp_name=info.corp_name,
            source_id=source_id,
            occurred_at=occurred_at,
            report_refusal=False,
        )
        refusal = admission.refusal
        admitted = list(first) if refusal is None else []
        if refusal is None:
            # Members the visible range shows beyond the installer (§8.5 allow_user) are
            # admitted one by one: one over a limit must not refuse the installer. They are
            # reported when their own install or subscribe event arrives.
            for member in sorted(set(info.members) - set(first)):
                extra = await self._admit(
                    corp_id,
                    [member],
                    test,
                    corp_name=info.corp_name,
                    source_id=source_id,
                    occurred_at=occurred_at,
                    report_refusal=False,
                )
                if extra.admitted:
                    admitted.append(member)
                else:
                    log.warning("member_not_counted", corp_id=corp_id, test=test)
        grant = Grant(
            corp_id=corp_id,
            permanent_code=exchanged.permanent_code,
            info=info,
            installer_user_id=installer,
            installer_open_userid=exchanged.installer_open_userid,
            test=test,
        )
        now = self._clock()
        stored = await self._repository.update_installation(
            corp_id,
            lambda record: installed(
                record,
                grant,
                refusal=refusal,
                admitted=admitted,
                occurred_at=occurred_at,
                now=now,
            ),
        )
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
        log.info("installed", corp_id=corp_id, test=test, members=len(stored.members))
        return Outcome("installed", corp_id, stored.corp_name, test=test)

    async def rekey(self, exchanged: Exchanged, source_id: str, occurred_at: float) -> Outcome:
        """reset_permanent_code: the corp's old code is void; keep the new one (§5.5)."""
        corp_id, now = exchanged.corp_id, self._clock()
        stored = await self._repository.update_installation(
            corp_id,
            lambda record: rekeyed(
                record, exchanged.permanent_code, occurred_at=occurred_at, now=now
            ),
        )
        if stored is None:
            log.warning("reset_permanent_code_without_installation", corp_id=corp_id)
            return Outcome("ignored", corp_id)
        await self._changed(stored, source_id, occurred_at, new_code=exchanged.permanent_code)
        return Outcome("installed", corp_id, stored.corp_name, test=stored.test)

    # --- change_auth, cancel_auth, members ------------------------------------------------

    async def lost(
        self, corp_id: str | None, app_state: str | None, source_id: str, occurred_at: float
    ) -> None:
        """An install WeCom has and we cannot use (its permanent code never reached us):
        ``auth.lost``, and the corp listed ``lost`` when we know it."""
        log.error("installation_lost", corp_id=corp_id, app_state=app_state)
        self.metrics.lost.inc()
        if corp_id is not None:
            now = self._clock()

            def change(record: InstallationRecord | None) -> InstallationRecord | None:
                if record is not None:
                    return None
                return InstallationRecord(
                    corp_id=corp_id,
                    status="lost",
                    changed_at=occurred_at,
                    installed_at=now,
                    updated_at=now,
                    reason=LOST_REASON,
                )

            await self._repository.update_installation(corp_id, change)
        payload = AuthLostPayload(corp_id=corp_id, reason=LOST_REASON, app_state=app_state)
        await self._publish(event_types.AUTH_LOST, payload, corp_id, occurred_at, source_id)

    async def on_change_auth(self, corp_id: str, *, source_id: str, occurred_at: float) -> None:
        """Re-read the grant (§5.3) and apply who has the app now."""
        current = await self._repository.installation(corp_id)
        if current is None:
            # WeCom changes only grants it holds: one we never recorded is an install whose
            # permanent code never reached us (the crash window of the exchange).
            await self.lost(corp_id, None, source_id, occurred_at)
            return
        if current.status != "active" or current.permanent_code is None:
            log.info("change_auth_for_inactive_corp", corp_id=corp_id)
            return
        if not current.applies(occurred_at):
            return
        info = await self._api.auth_info(corp_id, current.permanent_code)
        added = sorted(set(info.members) - set(current.members))
        removed = sorted(set(current.members) - set(info.members))
        refusal: Refusal | None = None
        if added:
            admission = await self._admit(
                corp_id,
                added,
                current.test,
                corp_name=current.corp_name,
                source_id=source_id,
                occurred_at=occurred_at,
                report_refusal=False,
            )
            refusal = admission.refusal
        if removed:
            await self._repository.update_ledger(lambda ledger: released(ledger, corp_id, removed))
        members = set(current.members) - set(removed)
        if refusal is None:
            members |= set(added)
        now = self._clock()
        stored = await self._repository.update_installation(
            corp_id,
            lambda record: regranted(record, info, members, occurred_at=occurred_at, now=now),
        )
        if refusal is not None:
            await self._reject(
                corp_id, current.corp_name, current.test, refusal, source_id, occurred_at
            )
        if stored is not None:
            await self._changed(stored, source_id, occurred_at)

    async def on_cancel_auth(self, corp_id: str, *, source_id: str, occurred_at: float) -> None:
        """The corp uninstalled (§5.4): its code is void; keep a revoked tombstone so a late,
        older event cannot resurrect it."""
        now = self._clock()
        stored = await self._repository.update_installation(
            corp_id, lambda record: revoked(record, occurred_at=occurred_at, now=now)
        )
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
        await self._repository.update_ledger(lambda ledger: released_corp(ledger, corp_id))
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
            admission = await self._admit(
                corp_id,
                [user_id],
                current.test,
                corp_name=current.corp_name,
                source_id=source_id,
                occurred_at=occurred_at,
            )
            if not admission.admitted:
                return
        else:
            await self._repository.update_ledger(
                lambda ledger: released(ledger, corp_id, [user_id])
            )
        now = self._clock()
        stored = await self._repository.update_installation(
            corp_id,
            lambda record: member_changed(
                record, user_id, present=present, occurred_at=occurred_at, now=now
            ),
        )
        if stored is not None:
            await self._changed(stored, source_id, occurred_at)

    async def set_test(
        self, corp_id: str, test: bool
    ) -> tuple[InstallationRecord | None, Refusal | None]:
        """Move an active installation between test and released (``POST
        /api/v1/installations/{corp_id}/test``): its accounts are re-admitted against the
        other kind's limits; refused (nothing changed) if that would exceed one."""
        current = await self._repository.installation(corp_id)
        if current is None or current.status != "active":
            return None, None
        if current.test != test:
            _, admission = await self._repository.update_ledger(
                lambda ledger: reclassify(ledger, self.limits, corp_id=corp_id, test=test)
            )
            if admission.refusal is not None:
                log.warning(
                    "reclassify_refused", corp_id=corp_id, test=test, limit=admission.refusal.limit
                )
                return current, admission.refusal
        now = self._clock()

        def change(record: InstallationRecord | None) -> InstallationRecord | None:
            if record is None or record.status != "active" or record.test == test:
                return None
            return replace(record, test=test, updated_at=now)

        stored = await self._repository.update_installation(corp_id, change)
        log.info("installation_reclassified", corp_id=corp_id, test=test)
        return stored or await self._repository.installation(corp_id), None

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
                f"{source_id}/{warning.limit}/{warning.level}",
            )

    # --- queries (rpc.auth) ---------------------------------------------------------------

    async def refresh_metrics(self) -> None:
        """Installations by status and kind, and quota use, as stored now."""
        self.metrics.record_installations(await self._repository.installations())
        usage = (await self._repository.ledger()).usage(self.limits.policy)
        self.metrics.record_quota(usage, self.limits)

    async def quota(self) -> dict[str, Any]:
        """The ``quota`` reply (design.md ``GET /api/v1/quota``)."""
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
