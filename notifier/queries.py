"""The notifier's answers on ``rpc.notify``: a request's latest result from the shared store,
so any replica answers for every request (``shared.notify.client`` is the caller's side)."""

from __future__ import annotations

import json

import structlog

from notifier.store import NotifierRepository
from shared.bus.abc import Message

log = structlog.get_logger(__name__)


class NotifyQueries:
    """Answers ``{"op": "result", "request_id": …}``."""

    def __init__(self, repository: NotifierRepository) -> None:
        self._repository = repository

    async def answer(self, message: Message) -> bytes:
        """The RPC handler: ``{"result": …}``, ``{"status": "pending"}``, ``{"status":
        "unknown"}``, or ``{"error": {"code", "message"}}`` for a malformed request."""
        try:
            body = json.loads(message.body)
        except ValueError:
            body = None
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or body.get("op") != "result"
            or not (isinstance(request_id, str) and 0 < len(request_id) <= 128)
        ):
            return _reply({"error": {"code": "bad_request", "message": "expected op result"}})
        record = await self._repository.get_request(request_id)
        if record is None:
            return _reply({"status": "unknown"})
        if record.state == "done" and record.result is not None:
            return _reply({"result": record.result.model_dump(mode="json")})
        return _reply({"status": "pending"})


def _reply(body: object) -> bytes:
    return json.dumps(body).encode()
