"""HTTP handlers of the two callback URLs: wire format in, domain call, answer out.

Answers (design.md): verification → the decrypted echostr as text/plain; an accepted
instruction callback → ``success``; an accepted data callback → an empty 200 (no passive
reply). Bad input → its 4xx with ``{"error": {...}}``; the bus unable to confirm → 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from aiohttp import web

from gateway.callbacks.batching import CallbackBatcher
from gateway.callbacks.metrics import GatewayMetrics
from gateway.callbacks.processor import CallbackParams, CallbackProcessor, ReceiveIdKind
from gateway.callbacks.publisher import EventPublisher
from shared.bus.abc import BusError
from shared.errors import PayloadTooLarge, ServiceError
from shared.http import read_body_within
from shared.wecom.events import Route

log = structlog.get_logger(__name__)

_SEEN_RECEIVE_IDS_LIMIT = 1000


class CallbackHandlers:
    """GET (URL verification) and POST (events) for ``/wecom/command`` and ``/wecom/data``."""

    def __init__(
        self,
        processor: CallbackProcessor,
        publisher: EventPublisher,
        metrics: GatewayMetrics,
        *,
        max_body_bytes: int,
        body_timeout_s: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._processor = processor
        self._body_timeout_s = body_timeout_s
        self._batcher = CallbackBatcher(processor.process)
        self._publisher = publisher
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._wall_clock = wall_clock
        self._seen_receive_ids: set[tuple[str, str]] = set()  # (route, receive id)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/wecom/command", self.verify_command),
            web.post("/wecom/command", self.receive_command),
            web.get("/wecom/data", self.verify_data),
            web.post("/wecom/data", self.receive_data),
        ]

    async def verify_command(self, request: web.Request) -> web.StreamResponse:
        return await self.verify("command", request)

    async def receive_command(self, request: web.Request) -> web.StreamResponse:
        return await self.receive("command", request)

    async def verify_data(self, request: web.Request) -> web.StreamResponse:
        return await self.verify("data", request)

    async def receive_data(self, request: web.Request) -> web.StreamResponse:
        return await self.receive("data", request)

    async def verify(self, route: Route, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            params = CallbackParams.from_query(request.query)
            echo = self._processor.verify_url(
                route, params, request.query.get("echostr", ""), now=self._wall_clock()
            )
        except ServiceError as exc:
            return self._rejected(route, exc, started, request)
        self._note_receive_id(route, echo.receive_id, echo.receive_id_kind)
        self._finish(route, "verified", started)
        log.info("callback_url_verified", route=route, receive_id_kind=echo.receive_id_kind)
        return web.Response(text=echo.echo, content_type="text/plain")

    async def receive(self, route: Route, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            params = CallbackParams.from_query(request.query)
            body = self._buffered_body(request)
            if body is None:
                body = await read_body_within(self._read_body(request), self._body_timeout_s)
            accepted = await self._batcher.process(route, params, body, now=self._wall_clock())
        except ServiceError as exc:
            return self._rejected(route, exc, started, request)
        kind = accepted.receive_id_kind
        self._log_receive_id_once(route, accepted.receive_id, kind)
        try:
            outcome = await self._publisher.publish(accepted)
        except BusError as exc:
            self._metrics.count_accepted(route, "unavailable", kind, time.perf_counter() - started)
            log.warning(
                "callback_publish_failed",
                route=route,
                event_type=accepted.event_type,
                event_id=accepted.event_id,
                error=exc.code,
            )
            return web.json_response(exc.to_json(), status=503)
        self._metrics.count_accepted(
            route,
            "accepted" if outcome == "published" else "duplicate",
            kind,
            time.perf_counter() - started,
        )
        log.debug(
            "callback_accepted",
            route=route,
            event_type=accepted.event_type,
            event_id=accepted.event_id,
            outcome=outcome,
        )
        # Instruction callbacks must answer the literal "success"; a data callback's body
        # would be read as a passive reply, so it stays empty.
        return web.Response(text="success" if route == "command" else "", content_type="text/plain")

    def _buffered_body(self, request: web.Request) -> bytes | None:
        """The body, when all of it arrived with the headers (the usual case): taken as it
        is, without request.read()'s two readany() awaits and bytearray copy."""
        length = request.content_length
        if length is None:
            return None
        if length > self._max_body_bytes:
            raise PayloadTooLarge(f"the body exceeds {self._max_body_bytes} bytes")
        content = request.content
        if content.is_eof() and content.total_bytes == length:
            return content.read_nowait()
        return None

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, read from the connection, within the callback body limit."""
        if request.content_length is not None:  # checked against the limit already
            return await request.read()
        # No Content-Length (chunked): read no more than the limit allows. The app's own
        # client_max_size is larger, for the internal API's notification requests.
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(self._max_body_bytes + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_body_bytes:
                raise PayloadTooLarge(f"the body exceeds {self._max_body_bytes} bytes")
        return b"".join(chunks)

    def _rejected(
        self, route: Route, exc: ServiceError, started: float, request: web.Request
    ) -> web.Response:
        self._finish(route, exc.code, started)
        log.warning(
            "callback_rejected",
            route=route,
            method=request.method,
            error=exc.code,
            status=exc.status,
            remote=request.remote,
        )
        return web.json_response(exc.to_json(), status=exc.status)

    def _finish(self, route: Route, outcome: str, started: float) -> None:
        self._metrics.count_callback(route, outcome, time.perf_counter() - started)

    def _note_receive_id(self, route: Route, receive_id: str, kind: ReceiveIdKind) -> None:
        self._metrics.count_receive_id(route, kind)
        self._log_receive_id_once(route, receive_id, kind)

    def _log_receive_id_once(self, route: Route, receive_id: str, kind: ReceiveIdKind) -> None:
        # Which receive id WeCom really uses is an open question (protocol doc §15.1): log
        # each id (an app or corp id, not a secret) once per route, so an operator sees it
        # during onboarding. Bounded, as callbacks for many corps carry many ids.
        key = (route, receive_id)
        if key not in self._seen_receive_ids and (
            len(self._seen_receive_ids) < _SEEN_RECEIVE_IDS_LIMIT
        ):
            self._seen_receive_ids.add(key)
            log.info(
                "callback_receive_id_seen",
                route=route,
                receive_id=receive_id,
                receive_id_kind=kind,
            )
