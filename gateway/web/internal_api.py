"""The gateway's internal API for the developer's own services (design.md): installations,
quota use and notification requests, behind a bearer ``INTERNAL_API_KEY``."""

from __future__ import annotations

import hmac
import json
from typing import Final

import structlog
from aiohttp import web

from shared.auth_client import AuthClient
from shared.bus.abc import Bus, Message
from shared.bus.topology import NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY
from shared.contracts import AuthRequest
from shared.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge, Unauthorized
from shared.http import read_body_within
from shared.notify import parse_notify_request
from shared.notify.client import PENDING, NotifyClient

log = structlog.get_logger(__name__)

# Inline media ride inside a request (base64); 20 MB video plus a third for base64.
MAX_NOTIFICATION_BYTES: Final = 28 * 1024 * 1024
MAX_SET_TEST_BYTES: Final = 1024


class InternalApi:
    def __init__(
        self,
        *,
        bus: Bus,
        auth: AuthClient,
        api_key: str,
        body_timeout_s: float = 30.0,
        notify: NotifyClient | None = None,
    ) -> None:
        self._bus = bus
        self._notify = notify or NotifyClient(bus)
        self._body_timeout_s = body_timeout_s
        self._auth = auth
        self._expected = f"Bearer {api_key}".encode()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/installations", self.installations),
            web.get("/api/v1/quota", self.quota),
            web.post("/api/v1/installations/{corp_id}/test", self.set_test),
            web.post("/api/v1/notifications", self.notify),
            web.get("/api/v1/notifications/{id}", self.notification),
        ]

    def _authorize(self, request: web.Request) -> None:
        # aiohttp decodes header bytes that are not UTF-8 as lone surrogates; encode them back
        # the same way so such a header is simply a wrong key (401), not a crash.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._expected):
            raise Unauthorized("a valid `Authorization: Bearer <INTERNAL_API_KEY>` is required")

    async def installations(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await self._auth.request(AuthRequest(op="installations"))
        return web.json_response({"installations": body.get("installations", [])})

    async def quota(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return web.json_response(await self._auth.request(AuthRequest(op="quota")))

    async def set_test(self, request: web.Request) -> web.Response:
        """Move an installation between test and released: ``{"test": true|false}`` → 200
        ``{"installation"}``; 404 when the corp has no active installation; 409 when the
        other kind's limits are full (nothing changed)."""
        self._authorize(request)
        if request.content_length is not None and request.content_length > MAX_SET_TEST_BYTES:
            raise PayloadTooLarge(f"the body is at most {MAX_SET_TEST_BYTES} bytes")
        raw = await read_body_within(request.read(), self._body_timeout_s)
        if len(raw) > MAX_SET_TEST_BYTES:
            raise PayloadTooLarge(f"the body is at most {MAX_SET_TEST_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise InvalidRequest('the body must be {"test": true|false}') from None
        if not isinstance(body, dict) or not isinstance(body.get("test"), bool):
            raise InvalidRequest('the body must be {"test": true|false}')
        corp_id = request.match_info["corp_id"]
        if not 0 < len(corp_id) <= 128:
            raise InvalidRequest("the corp id must be 1 to 128 characters")
        reply = await self._auth.request(
            AuthRequest(op="set_test", corp_id=corp_id, test=body["test"])
        )
        refused = reply.get("refused")
        if refused:
            raise Conflict(f"{refused.get('limit')}: {refused.get('reason')}")
        if reply.get("installation") is None:
            raise NotFound(f"no active installation for corp {corp_id}")
        return web.json_response({"installation": reply["installation"]})

    async def notify(self, request: web.Request) -> web.Response:
        """Validate a ``notify.request`` and publish it to ``wecom.notify``; 202 with its id.

        Validation happens here too, so a caller learns of a bad request at once rather than
        from a ``notify.result`` later.
        """
        self._authorize(request)
        if request.content_length is not None and request.content_length > MAX_NOTIFICATION_BYTES:
            raise PayloadTooLarge(
                f"a notification request is at most {MAX_NOTIFICATION_BYTES} bytes"
            )
        raw = await read_body_within(request.read(), self._body_timeout_s)
        if len(raw) > MAX_NOTIFICATION_BYTES:
            raise PayloadTooLarge(
                f"a notification request is at most {MAX_NOTIFICATION_BYTES} bytes"
            )
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            # RecursionError: nesting deeper than the interpreter's stack (``[[[[…]]]]``).
            raise InvalidRequest("the body must be a JSON object") from None
        notification = parse_notify_request(raw)
        message = Message(body=raw, message_id=notification.id, type=NOTIFY_REQUEST_KEY)
        await self._bus.publish(NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY, message)
        log.info("notification_accepted", request_id=notification.id, corp_id=notification.corp_id)
        return web.json_response({"id": notification.id}, status=202)

    async def notification(self, request: web.Request) -> web.Response:
        """The latest ``notify.result`` of a request, ``{"status": "pending"}`` while the
        notifier works on it, 404 for an id it has never seen (``rpc.notify``)."""
        self._authorize(request)
        request_id = request.match_info["id"]
        found = await self._notify.result(request_id)
        if found is None:
            raise NotFound("no notification request with this id is known")
        if found == PENDING:
            return web.json_response({"status": PENDING})
        return web.json_response(found.model_dump(mode="json"))
