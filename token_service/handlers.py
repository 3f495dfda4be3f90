"""token_service's bus handlers: events on ``token_service.events`` and ``rpc.tokens`` requests.

Event handling is idempotent: a ticket is kept only if newer, a grant event only if newer
than the grant's last change, so a redelivery or a WeCom retry changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from shared.bus.abc import Delivery, Message
from shared.contracts import (
    AuthChangedPayload,
    AuthGrantedPayload,
    AuthRevokedPayload,
    EventEnvelope,
    SuiteTicketPayload,
    TokenReply,
    TokenRequest,
    event_types,
    permanent_code_context,
    read_envelope,
)
from shared.contracts.rpc import (
    CachedTokenStatus,
    TicketStatus,
    TokensStatus,
    TokensStatusRequest,
)
from shared.errors import InvalidRequest, describe_validation
from shared.storage.crypto import SecretBox
from token_service.domain import CorpGrant, SuiteTicket
from token_service.manager import TokenManager
from token_service.metrics import TokenMetrics
from token_service.store import TokenRepository

log = structlog.get_logger(__name__)

# The event types consumed here are bound in shared.bus.product_topology.


class TokenHandlers:
    def __init__(
        self,
        manager: TokenManager,
        repository: TokenRepository,
        box: SecretBox,
        metrics: TokenMetrics,
        *,
        suite_id: str,
    ) -> None:
        self._manager = manager
        self._repository = repository
        self._box = box
        self._metrics = metrics
        self._suite_id = suite_id

    # --- rpc.tokens -----------------------------------------------------------------------

    async def answer(self, message: Message) -> bytes:
        """One ``rpc.tokens`` request → ``{"token", "expires_at"}`` (errors become error
        replies in the bus's RPC server); ``{"op": "status"}`` → :class:`TokensStatus`."""
        if _is_status_request(message.body):
            try:
                TokensStatusRequest.model_validate_json(message.body)
            except ValidationError as exc:
                raise InvalidRequest(f"bad rpc.tokens op: {describe_validation(exc)}") from None
            return (await self.status()).model_dump_json().encode()
        try:
            request = TokenRequest.model_validate_json(message.body)
        except ValidationError as exc:
            raise InvalidRequest(f"bad rpc.tokens request: {describe_validation(exc)}") from None
        token = await self._manager.get(request)
        reply = TokenReply(
            token=token.value, expires_at=datetime.fromtimestamp(token.expires_at, UTC)
        )
        return reply.model_dump_json().encode()

    async def status(self) -> TokensStatus:
        """The ticket's times and every cached token's lifetime, from the shared store (any
        replica answers the same); never a token or ticket value."""
        ticket = await self._repository.get_ticket()
        tokens = []
        for name, (fetched_at, expires_at) in sorted(
            (await self._repository.cached_tokens()).items()
        ):
            kind, _, corp_id = name.partition(":")
            tokens.append(
                CachedTokenStatus(
                    kind=kind,
                    corp_id=corp_id or None,
                    fetched_at=datetime.fromtimestamp(fetched_at, UTC),
                    expires_at=datetime.fromtimestamp(expires_at, UTC),
                )
            )
        return TokensStatus(
            ticket=None
            if ticket is None
            else TicketStatus(
                timestamp=datetime.fromtimestamp(ticket.timestamp, UTC),
                received_at=datetime.fromtimestamp(ticket.received_at, UTC),
            ),
            tokens=tokens,
        )

    # --- events ---------------------------------------------------------------------------

    async def handle_event(self, delivery: Delivery) -> None:
        """Apply one event; a malformed one raises a non-retryable error (→ ``.dead``)."""
        envelope = read_envelope(delivery.message.body)
        try:
            if envelope.type == event_types.COMMAND_SUITE_TICKET:
                await self._suite_ticket(envelope)
            elif envelope.type == event_types.AUTH_GRANTED:
                await self._granted(envelope, AuthGrantedPayload.model_validate(envelope.payload))
            elif envelope.type == event_types.AUTH_CHANGED:
                await self._changed(envelope, AuthChangedPayload.model_validate(envelope.payload))
            elif envelope.type == event_types.AUTH_REVOKED:
                await self._revoked(envelope, AuthRevokedPayload.model_validate(envelope.payload))
            else:
                log.warning("event_ignored", type=envelope.type, event_id=envelope.id)
        except ValidationError as exc:
            raise InvalidRequest(
                f"bad {envelope.type} payload: {describe_validation(exc)}"
            ) from None

    async def _suite_ticket(self, envelope: EventEnvelope) -> None:
        if envelope.suite_id != self._suite_id:
            # Another app's ticket on a shared broker: useless to us, harmless to drop.
            self._metrics.count_ticket_update("other_suite")
            log.warning("suite_ticket_for_other_suite", event_id=envelope.id)
            return
        payload = SuiteTicketPayload.model_validate(envelope.payload)
        ticket = SuiteTicket(
            value=payload.suite_ticket,
            timestamp=envelope.occurred_at.timestamp(),
            received_at=envelope.received_at.timestamp(),
        )
        stored = await self._repository.save_ticket(ticket)
        self._metrics.count_ticket_update("stored" if stored else "older")
        if stored:
            self._metrics.ticket.set_ticket(ticket.timestamp)
        log.info("suite_ticket_received", stored=stored, event_id=envelope.id)

    async def _granted(self, envelope: EventEnvelope, payload: AuthGrantedPayload) -> None:
        code = self._box.open(
            payload.permanent_code_sealed, context=permanent_code_context(payload.corp_id)
        )
        before = await self._repository.get_grant(payload.corp_id)
        grant = await self._repository.apply_grant(
            "granted",
            corp_id=payload.corp_id,
            occurred_at=envelope.occurred_at.timestamp(),
            permanent_code=code,
            agent_id=payload.agent_id,
        )
        if grant is not None and _new_code(before, code):
            # A re-install brings a new permanent code: tokens of the old one are void. A
            # later member's install carries the code we hold: its tokens stay good.
            await self._manager.forget_corp(payload.corp_id)
        log.info("grant_applied", change="granted", corp_id=payload.corp_id, applied=bool(grant))

    async def _changed(self, envelope: EventEnvelope, payload: AuthChangedPayload) -> None:
        code = (
            None
            if payload.permanent_code_sealed is None
            else self._box.open(
                payload.permanent_code_sealed, context=permanent_code_context(payload.corp_id)
            )
        )
        before = await self._repository.get_grant(payload.corp_id)
        grant = await self._repository.apply_grant(
            "changed",
            corp_id=payload.corp_id,
            occurred_at=envelope.occurred_at.timestamp(),
            permanent_code=code,
            agent_id=payload.agent_id,
        )
        if grant is not None and code is not None and _new_code(before, code):
            await self._manager.forget_corp(payload.corp_id)
        log.info("grant_applied", change="changed", corp_id=payload.corp_id, applied=bool(grant))

    async def _revoked(self, envelope: EventEnvelope, payload: AuthRevokedPayload) -> None:
        grant = await self._repository.apply_grant(
            "revoked", corp_id=payload.corp_id, occurred_at=envelope.occurred_at.timestamp()
        )
        await self._manager.forget_corp(payload.corp_id)
        log.info("grant_applied", change="revoked", corp_id=payload.corp_id, applied=bool(grant))


def _is_status_request(body: bytes) -> bool:
    """Whether an ``rpc.tokens`` body is the console's read op rather than a token request."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "op" in parsed


def _new_code(before: CorpGrant | None, code: str) -> bool:
    """Whether ``code`` replaces the permanent code the cached tokens were made from.

    ``before`` is read just ahead of the grant's atomic update: two different codes racing
    for one corp could make this miss a change, and then the stale-token retry (40014/42001)
    still replaces the void token on its first use.
    """
    return before is None or before.revoked or before.permanent_code != code
