"""The notifier's answers on ``rpc.notify``: a request's latest result, and the console's read
ops (counts by status, the latest results), from the shared store, so any replica answers for
every request (``shared.notify.client`` is the caller's side)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from notifier.store import NotifierRepository
from shared.bus.abc import Message
from shared.contracts.rpc import NotifyQuery, NotifyResultRow
from shared.errors import describe_validation

log = structlog.get_logger(__name__)


class NotifyQueries:
    """Answers ``{"op": "result", "request_id": …}``, ``{"op": "counts", "since"}`` and
    ``{"op": "results", "corp_id"?, "status"?, "limit"}``."""

    def __init__(self, repository: NotifierRepository) -> None:
        self._repository = repository

    async def answer(self, message: Message) -> bytes:
        """The RPC handler: ``{"result": …}``, ``{"status": "pending"}``, ``{"status":
        "unknown"}``, ``{"counts": {status: n}}``, ``{"results": [row, …]}``, or ``{"error":
        {"code", "message"}}`` for a malformed request."""
        try:
            body = json.loads(message.body)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("op") in ("counts", "results"):
            return await self._read(message.body)
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

    async def _read(self, raw: bytes) -> bytes:
        try:
            query = NotifyQuery.model_validate_json(raw)
        except ValidationError as exc:
            message = f"bad rpc.notify op: {describe_validation(exc)}"
            return _reply({"error": {"code": "bad_request", "message": message}})
        rows = await self._repository.results(
            since=query.since, corp_id=query.corp_id, status=query.status
        )
        if query.op == "counts":
            return _reply({"counts": dict(Counter(str(row["status"]) for row in rows))})
        listed = [
            NotifyResultRow.model_validate(
                {**row, "finished_at": datetime.fromtimestamp(float(str(row["finished_at"])), UTC)}
            ).model_dump(mode="json")
            for row in rows[: query.limit]
        ]
        return _reply({"results": listed})


def _reply(body: object) -> bytes:
    return json.dumps(body).encode()
