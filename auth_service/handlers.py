"""auth_service's bus handlers: the events on ``auth_service.events``, ``rpc.auth`` requests,
and the publisher of ``auth.*`` events."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from auth_service.installs import Installs, event_id, view
from auth_service.sessions import EndedSessions
from auth_service.store import AuthRepository
from shared.bus.abc import Bus, Delivery, Message, RetryLater
from shared.bus.events import publish_event
from shared.contracts import (
    AuthRequest,
    CancelAuthPayload,
    ChangeAuthPayload,
    CreateAuthPayload,
    EventEnvelope,
    InstallRedirectPayload,
    Payload,
    ResetPermanentCodePayload,
    SubscribeEventPayload,
    event_types,
    read_envelope,
    service_event,
)
from shared.errors import InvalidRequest, describe_validation
from shared.tokens import TokenUnavailable

log = structlog.get_logger(__name__)

# The event types consumed here are bound in shared.bus.product_topology.
# A QR-code install's State (WeCom's rule for get_app_qrcode: up to 32 letters and digits).
_QR_STATE = re.compile(r"^[A-Za-z0-9]{1,32}\Z")


class EventPublisher:
    """Publishes ``auth.*`` events as envelopes on ``wecom.events``."""

    def __init__(self, bus: Bus, suite_id: str, clock: Callable[[], datetime] | None = None):
        self._bus = bus
        self._suite_id = suite_id
        self._clock = clock or (lambda: datetime.now(UTC))

    async def __call__(
        self,
        event_type: str,
        payload: Payload,
        corp_id: str | None,
        occurred_at: float,
        source_id: str,
    ) -> None:
        envelope = service_event(
            event_type,
            payload,
            event_id=event_id(event_type, source_id, corp_id),
            suite_id=self._suite_id,
            corp_id=corp_id,
            occurred_at=datetime.fromtimestamp(occurred_at, UTC),
            received_at=self._clock(),
        )
        await publish_event(self._bus, envelope)


class AuthHandlers:
    def __init__(
        self,
        installs: Installs,
        repository: AuthRepository,
        *,
        suite_id: str,
        sessions: EndedSessions,
        other_suite: Callable[[str], None] = lambda _: None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._installs = installs
        self._repository = repository
        self._sessions = sessions
        self._wall_clock = wall_clock
        self._suite_id = suite_id
        # Counts an instruction of another suite, by event type (a metric in the service).
        self._other_suite = other_suite

    async def handle_event(self, delivery: Delivery) -> None:
        """Apply one event; malformed → ``.dead``; a passing failure → delayed retry; another
        suite's instruction → ignored, logged and counted."""
        envelope = read_envelope(delivery.message.body)
        if envelope.type.startswith("command.") and envelope.suite_id != self._suite_id:
            # Another app's callback on a shared broker: applying it would install (or
            # revoke) with a code our suite cannot use, or on a corp it never chose.
            self._other_suite(envelope.type)
            log.warning("event_for_other_suite", type=envelope.type, event_id=envelope.id)
            return
        try:
            await self._dispatch(envelope)
            await self._installs.refresh_metrics()
        except ValidationError as exc:
            raise InvalidRequest(
                f"bad {envelope.type} payload: {describe_validation(exc)}"
            ) from None
        except TokenUnavailable as exc:
            if exc.retryable_now:
                raise RetryLater(f"no suite token yet ({exc.error_code})") from exc
            raise

    async def _dispatch(self, envelope: EventEnvelope) -> None:
        occurred_at = envelope.occurred_at.timestamp()
        source = envelope.id
        kind = envelope.type
        if kind == event_types.COMMAND_CREATE_AUTH:
            created = CreateAuthPayload.model_validate(envelope.payload)
            # A QR/market install's State is not ours: it never marks a test install, but it
            # tells the developer's campaigns apart (GET /install/qrcode?state=), so it comes
            # back as app_state when it is one WeCom accepts (§8.11).
            app_state = created.state if created.state and _QR_STATE.match(created.state) else None
            await self._installs.on_auth_code(
                created.auth_code, source_id=source, occurred_at=occurred_at, app_state=app_state
            )
        elif kind == event_types.INSTALL_REDIRECT:
            redirect = InstallRedirectPayload.model_validate(envelope.payload)
            await self._installs.on_auth_code(
                redirect.auth_code,
                source_id=source,
                occurred_at=occurred_at,
                state=redirect.state if redirect.state_valid else None,
                state_test=redirect.state_valid and redirect.test,
                app_state=redirect.app_state if redirect.state_valid else None,
            )
        elif kind == event_types.COMMAND_RESET_PERMANENT_CODE:
            reset = ResetPermanentCodePayload.model_validate(envelope.payload)
            await self._installs.on_auth_code(
                reset.auth_code, source_id=source, occurred_at=occurred_at, reset=True
            )
        elif kind == event_types.COMMAND_CHANGE_AUTH:
            changed = ChangeAuthPayload.model_validate(envelope.payload)
            await self._installs.on_change_auth(
                changed.auth_corp_id, source_id=source, occurred_at=occurred_at
            )
        elif kind == event_types.COMMAND_CANCEL_AUTH:
            cancelled = CancelAuthPayload.model_validate(envelope.payload)
            await self._installs.on_cancel_auth(
                cancelled.auth_corp_id, source_id=source, occurred_at=occurred_at
            )
        elif kind in (event_types.DATA_EVENT_SUBSCRIBE, event_types.DATA_EVENT_UNSUBSCRIBE):
            member = SubscribeEventPayload.model_validate(envelope.payload)
            if envelope.corp_id is None or not member.user_id:
                raise InvalidRequest(f"{kind} without corp id or member")
            await self._installs.on_member(
                envelope.corp_id,
                member.user_id,
                present=kind == event_types.DATA_EVENT_SUBSCRIBE,
                source_id=source,
                occurred_at=occurred_at,
            )
        else:
            log.warning("event_ignored", type=kind, event_id=envelope.id)

    async def answer(self, message: Message) -> bytes:
        """One ``rpc.auth`` request."""
        try:
            request = AuthRequest.model_validate_json(message.body)
        except ValidationError as exc:
            raise InvalidRequest(f"bad rpc.auth request: {describe_validation(exc)}") from None
        reply: dict[str, Any]
        if request.op == "installation":
            record = await self._repository.installation(request.corp_id or "")
            reply = {
                "installation": None if record is None else view(record).model_dump(mode="json")
            }
        elif request.op == "installations":
            records = await self._repository.installations()
            reply = {"installations": [view(r).model_dump(mode="json") for r in records]}
        elif request.op == "quota":
            reply = await self._installs.quota()
        elif request.op in ("session", "end_session"):
            reply = await self._session_op(request)
        elif request.op == "set_test":
            record, refusal = await self._installs.set_test(
                request.corp_id or "", bool(request.test)
            )
            await self._installs.refresh_metrics()
            reply = {
                "installation": None if record is None else view(record).model_dump(mode="json"),
                "refused": None
                if refusal is None
                else {"limit": refusal.limit, "reason": refusal.reason},
            }
        else:
            reply = await self._installs.outcome(request.auth_code or "", request.wait_s)
        return json.dumps(reply).encode()

    async def _session_op(self, request: AuthRequest) -> dict[str, Any]:
        """A member session: is it still valid (``session``), or it signed out (``end_session``)."""
        session_id = request.session_id or ""
        if request.op == "end_session":
            expires_at = float(request.expires_at or 0)
            await self._sessions.end(session_id, expires_at=expires_at, now=self._wall_clock())
            return {"ended": True}
        record = await self._repository.installation(request.corp_id or "")
        installation = None if record is None else view(record).model_dump(mode="json")
        return {"ended": await self._sessions.is_ended(session_id), "installation": installation}
