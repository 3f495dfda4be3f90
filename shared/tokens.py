"""The client side of ``rpc.tokens``: how every service gets a WeCom token.

Only token_service calls WeCom's token endpoints (design.md); everyone else asks it over the
bus. :meth:`TokensClient.source` plugs into :func:`shared.wecom.api.with_token`, which gives
the stale-token retry every WeCom caller needs.
"""

from __future__ import annotations

import json
from typing import ClassVar, Final

from pydantic import ValidationError

from shared.bus.abc import Bus, Message
from shared.bus.topology import RPC_TOKENS_QUEUE
from shared.contracts import TokenKind, TokenReply, TokenRequest
from shared.contracts.rpc import TokensStatus
from shared.errors import ServiceError
from shared.wecom.api import TokenSource

# Error codes of token_service whose cause may pass by itself (a ticket push, WeCom recovering,
# another replica finishing its refresh): the caller may retry later.
RETRYABLE_CODES: Final = frozenset(
    {"not_ready", "wecom_unavailable", "wecom_busy", "wecom_rate_limited", "refresh_in_progress"}
)


class TokenUnavailable(ServiceError):
    """token_service answered with an error; ``code`` is its error code (e.g. ``not_ready``,
    ``not_installed``, ``wecom_credential_invalid``)."""

    status = 503
    reason = "no token is available"
    code: ClassVar[str] = "token_unavailable"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = code

    @property
    def retryable_now(self) -> bool:
        return self.error_code in RETRYABLE_CODES


class TokensClient:
    """Asks ``rpc.tokens`` for tokens over ``bus``."""

    def __init__(self, bus: Bus, *, timeout_s: float = 10.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def get(
        self,
        kind: TokenKind,
        *,
        corp_id: str | None = None,
        agent_id: int | None = None,
        stale: str | None = None,
    ) -> TokenReply:
        """The current token of ``kind``.

        Raises:
            TokenUnavailable: token_service answered with an error.
            RpcTimeout, BusError: no answer.
        """
        request = TokenRequest(kind=kind, corp_id=corp_id, agent_id=agent_id, stale=stale)
        reply = await self._bus.call(
            RPC_TOKENS_QUEUE,
            request.model_dump_json(exclude_none=True).encode(),
            timeout=self._timeout_s,
        )
        return parse_reply(reply)

    async def status(self) -> TokensStatus:
        """The stored ticket's times and every cached token's lifetime (never a value).

        Raises:
            TokenUnavailable: an error reply or shape. RpcTimeout, BusError: no answer.
        """
        reply = await self._bus.call(RPC_TOKENS_QUEUE, b'{"op":"status"}', timeout=self._timeout_s)
        try:
            body = json.loads(reply.body)
        except ValueError:
            raise TokenUnavailable(
                "bad_reply", "token_service answered something not JSON"
            ) from None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            raise TokenUnavailable(str(error.get("code", "unknown")), str(error.get("message", "")))
        try:
            return TokensStatus.model_validate(body)
        except ValidationError:
            raise TokenUnavailable(
                "bad_reply", "token_service answered an unexpected shape"
            ) from None

    def source(
        self, kind: TokenKind, *, corp_id: str | None = None, agent_id: int | None = None
    ) -> TokenSource:
        """A token source for :func:`shared.wecom.api.with_token`."""

        async def fetch(stale: str | None) -> str:
            reply = await self.get(kind, corp_id=corp_id, agent_id=agent_id, stale=stale)
            return reply.token

        return fetch


def parse_reply(reply: Message) -> TokenReply:
    """The token of a reply, or the error it carries as :class:`TokenUnavailable`."""
    try:
        body = json.loads(reply.body)
    except ValueError:
        raise TokenUnavailable("bad_reply", "token_service answered something not JSON") from None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        raise TokenUnavailable(str(error.get("code", "unknown")), str(error.get("message", "")))
    try:
        return TokenReply.model_validate(body)
    except ValidationError:
        raise TokenUnavailable("bad_reply", "token_service answered an unexpected shape") from None
