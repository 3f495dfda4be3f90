"""auth_service's install component: auth codes exchanged exactly once
(``auth_service.auth_codes``) feeding the installation life cycle (``auth_service.lifecycle``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from auth_service.auth_codes import CLAIM_FRESH_S, AuthCodes
from auth_service.domain import CodeRecord, InstallationRecord, Limits, Outcome, Refusal
from auth_service.exchange import AuthApi, Exchanged
from auth_service.lifecycle import Lifecycle, Publish, event_id, view
from auth_service.metrics import AuthMetrics
from auth_service.store import AuthRepository
from shared.metrics import new_registry
from shared.storage.crypto import SecretBox

__all__ = ["CLAIM_FRESH_S", "Installs", "Outcome", "Publish", "event_id", "view"]


class Installs:
    """The events of an install's life, each routed to the part that owns it."""

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
        metrics = metrics or AuthMetrics.create(new_registry())
        self.metrics = metrics
        self.codes = AuthCodes(repository, api, exchanges=metrics.exchanges, clock=clock)
        self.lifecycle = Lifecycle(
            repository,
            api,
            box,
            publish,
            limits=limits,
            test_corp_ids=test_corp_ids,
            test_accounts=test_accounts,
            metrics=metrics,
            clock=clock,
        )
        self.limits = limits

    async def on_auth_code(
        self,
        auth_code: str,
        *,
        source_id: str,
        occurred_at: float,
        state: str | None = None,
        state_test: bool = False,
        app_state: str | None = None,
        reset: bool = False,
    ) -> None:
        """Exchange ``auth_code`` once, whichever deliveries carry it and however often, and
        install (or, for ``reset_permanent_code``, re-key) the corp it grants."""

        async def apply(exchanged: Exchanged, record: CodeRecord) -> Outcome:
            if reset:
                return await self.lifecycle.rekey(exchanged, source_id, occurred_at)
            return await self.lifecycle.install(
                exchanged, source_id, occurred_at, record.state_test, record.app_state
            )

        async def lost(app_state: str | None) -> None:
            await self.lifecycle.lost(None, app_state, source_id, occurred_at)

        await self.codes.exchange_once(
            auth_code,
            source_id=source_id,
            apply=apply,
            lost=lost,
            state=state,
            state_test=state_test,
            app_state=app_state,
        )

    async def on_change_auth(self, corp_id: str, *, source_id: str, occurred_at: float) -> None:
        """``change_auth`` (see :meth:`Lifecycle.on_change_auth`)."""
        await self.lifecycle.on_change_auth(corp_id, source_id=source_id, occurred_at=occurred_at)

    async def on_cancel_auth(self, corp_id: str, *, source_id: str, occurred_at: float) -> None:
        """``cancel_auth`` (see :meth:`Lifecycle.on_cancel_auth`)."""
        await self.lifecycle.on_cancel_auth(corp_id, source_id=source_id, occurred_at=occurred_at)

    async def on_member(
        self, corp_id: str, user_id: str, *, present: bool, source_id: str, occurred_at: float
    ) -> None:
        """``subscribe``/``unsubscribe`` (see :meth:`Lifecycle.on_member`)."""
        await self.lifecycle.on_member(
            corp_id, user_id, present=present, source_id=source_id, occurred_at=occurred_at
        )

    async def outcome(self, auth_code: str, wait_s: float) -> dict[str, Any]:
        """The ``install_outcome`` reply (see :meth:`AuthCodes.outcome`)."""
        return await self.codes.outcome(auth_code, wait_s)

    async def quota(self) -> dict[str, Any]:
        """The ``quota`` reply."""
        return await self.lifecycle.quota()

    async def refresh_metrics(self) -> None:
        """Installations and quota gauges as stored now."""
        await self.lifecycle.refresh_metrics()

    async def set_test(
        self, corp_id: str, test: bool
    ) -> tuple[InstallationRecord | None, Refusal | None]:
        """Move an installation between test and released (see :meth:`Lifecycle.set_test`)."""
        return await self.lifecycle.set_test(corp_id, test)
