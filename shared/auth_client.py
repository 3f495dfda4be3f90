"""The client side of ``rpc.auth``: installations and quota, as auth_service knows them."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.bus.abc import Bus
from shared.bus.topology import RPC_AUTH_QUEUE
from shared.contracts import AuthRequest, Installation
from shared.errors import ServiceError


class AuthUnavailable(ServiceError):
    """auth_service answered with an error (``error_code``) or an unexpected shape."""

    code = "auth_unavailable"
    status = 503
    reason = "installation data is unavailable"

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class AuthClient:
    """Asks ``rpc.auth`` over ``bus``."""

    def __init__(self, bus: Bus, *, timeout_s: float = 5.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def request(self, request: AuthRequest) -> Any:
        """The decoded reply body of ``request``.

        Raises:
            AuthUnavailable: an error reply.
            RpcTimeout, BusError: no answer.
        """
        reply = await self._bus.call(
            RPC_AUTH_QUEUE,
            request.model_dump_json(exclude_none=True).encode(),
            timeout=self._timeout_s + request.wait_s,
        )
        try:
            body = json.loads(reply.body)
        except ValueError:
            raise AuthUnavailable("bad_reply", "auth_service answered something not JSON") from None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            raise AuthUnavailable(str(error.get("code")), str(error.get("message", "")))
        return body

    async def installation(self, corp_id: str) -> Installation | None:
        """The corp's installation, or None if the app was never installed there."""
        body = await self.request(AuthRequest(op="installation", corp_id=corp_id))
        found = body.get("installation") if isinstance(body, dict) else None
        if found is None:
            return None
        try:
            return Installation.model_validate(found)
        except ValidationError:
            raise AuthUnavailable(
                "bad_reply", "auth_service answered an unexpected shape"
            ) from None
