"""The client side of ``rpc.notify``: a notification request's latest result, as the notifier
has stored it (any replica answers from the shared store)."""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from pydantic import ValidationError

from shared.bus.abc import Bus
from shared.bus.topology import RPC_NOTIFY_QUEUE
from shared.contracts.rpc import NotifyQuery, NotifyResultRow
from shared.errors import ServiceError
from shared.notify.result import NotifyResult, NotifyStatus

PENDING: Final = "pending"
"""The notifier knows the request but has no final result yet."""


class NotifyUnavailable(ServiceError):
    """The notifier answered with an error or an unexpected shape."""

    code = "notify_unavailable"
    status = 503
    reason = "notification results are unavailable"


class NotifyClient:
    """Asks ``rpc.notify`` over ``bus``."""

    def __init__(self, bus: Bus, *, timeout_s: float = 5.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def result(self, request_id: str) -> NotifyResult | Literal["pending"] | None:
        """The latest result of request ``request_id``.

        Args:
            request_id: the request's ``id``.

        Returns:
            Its :class:`NotifyResult`; :data:`PENDING` while the notifier works on it; None
            when the notifier has never seen it (or forgot it after ``NOTIFY_RECORD_TTL_S``).

        Raises:
            NotifyUnavailable: an error reply or an unexpected shape.
            RpcTimeout, BusError: no answer (no notifier running).
        """
        request = json.dumps({"op": "result", "request_id": request_id}).encode()
        reply = await self._bus.call(RPC_NOTIFY_QUEUE, request, timeout=self._timeout_s)
        try:
            body = json.loads(reply.body)
        except ValueError:
            raise NotifyUnavailable("the notifier answered something not JSON") from None
        if not isinstance(body, dict):
            raise NotifyUnavailable("the notifier answered an unexpected shape")
        if isinstance(body.get("error"), dict):
            raise NotifyUnavailable(str(body["error"].get("message", "")))
        if "result" in body:
            try:
                return NotifyResult.model_validate(body["result"])
            except ValidationError:
                raise NotifyUnavailable("the notifier answered an unexpected result") from None
        status = body.get("status")
        if status == PENDING:
            return PENDING
        if status == "unknown":
            return None
        raise NotifyUnavailable("the notifier answered an unexpected shape")


class NotifyReads:
    """The developer console's reads of ``rpc.notify``: final results of the last day."""

    def __init__(self, bus: Bus, *, timeout_s: float = 5.0) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def _ask(self, query: NotifyQuery) -> dict[str, Any]:
        raw = query.model_dump_json(exclude_none=True).encode()
        reply = await self._bus.call(RPC_NOTIFY_QUEUE, raw, timeout=self._timeout_s)
        try:
            body = json.loads(reply.body)
        except ValueError:
            raise NotifyUnavailable("the notifier answered something not JSON") from None
        if not isinstance(body, dict) or isinstance(body.get("error"), dict):
            raise NotifyUnavailable("the notifier refused the query")
        return body

    async def counts(self, since: float) -> dict[str, int]:
        """Final results by status since Unix time ``since``.

        Raises:
            NotifyUnavailable: an error reply. RpcTimeout, BusError: no answer.
        """
        body = await self._ask(NotifyQuery(op="counts", since=since))
        counts = body.get("counts")
        if not isinstance(counts, dict):
            raise NotifyUnavailable("the notifier answered an unexpected shape")
        return {str(status): int(n) for status, n in counts.items()}

    async def results(
        self,
        *,
        since: float = 0.0,
        corp_id: str | None = None,
        status: NotifyStatus | None = None,
        limit: int = 50,
    ) -> list[NotifyResultRow]:
        """The latest final results, newest first (status, errcode, reason; no content).

        Raises:
            NotifyUnavailable: an error reply or shape. RpcTimeout, BusError: no answer.
        """
        query = NotifyQuery(op="results", since=since, corp_id=corp_id, status=status, limit=limit)
        body = await self._ask(query)
        try:
            return [NotifyResultRow.model_validate(row) for row in body.get("results", [])]
        except (ValidationError, TypeError):
            raise NotifyUnavailable("the notifier answered an unexpected result") from None
