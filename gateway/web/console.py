"""``/console``: the developer console (docs/console.md), signed in with INTERNAL_API_KEY.

Every page reads over the RPCs (``rpc.auth``, ``rpc.tokens``, ``rpc.notify``), so it shows the
same on the in-process bus and on RabbitMQ with any number of replicas. Plain forms and links,
no JavaScript; a POST needs the session (SameSite=Strict) and a same-origin ``Origin``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import structlog
from aiohttp import web
from pydantic import ValidationError

from gateway.web.console_model import (
    NOTIFY_STATUSES,
    ConsoleSessions,
    by_status,
    duration_text,
    freshness,
    gauges,
    key_matches,
    origin_allowed,
    origin_of_url,
)
from gateway.web.pages import NO_STORE, html_page
from shared.auth_client import AuthClient
from shared.contracts import AuthRequest, Installation
from shared.errors import ServiceError
from shared.notify.client import NotifyReads
from shared.tokens import TokensClient

log = structlog.get_logger(__name__)

T = TypeVar("T")

COOKIE: Final = "wecom_console"
COOKIE_PATH: Final = "/console"
DAY_S: Final = 86_400
_MAX_FORM_BYTES: Final = 4096
_KINDS_ZH: Final = {"corps": "正式版企业", "users": "正式版成员", "test_accounts": "测试账号"}
_KINDS_EN: Final = {
    "corps": "Released corps",
    "users": "Released users",
    "test_accounts": "Test accounts",
}


class ConsoleHandlers:
    """The console's routes: sign-in and sign-out, overview, installations, notifications."""

    def __init__(
        self,
        *,
        api_key: str,
        data_key: bytes,
        auth: AuthClient,
        tokens: TokensClient,
        notify: NotifyReads,
        dead_letters: Callable[[], Awaitable[dict[str, int]]],
        public_base_url: str,
        secure_cookies: bool,
        sandbox: bool,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_key = api_key
        self._sessions = ConsoleSessions(data_key)
        self._auth = auth
        self._tokens = tokens
        self._notify = notify
        self._dead_letters = dead_letters
        self._public_origin = origin_of_url(public_base_url)
        self._secure = secure_cookies
        self._sandbox = sandbox
        self._clock = wall_clock

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.root),
            web.get("/console", self.overview),
            web.get("/console/login", self.link_sign_in),
            web.post("/console/login", self.sign_in),
            web.post("/console/logout", self.sign_out),
            web.get("/console/installations", self.installations),
            web.post("/console/installations/{corp_id}/test", self.set_test),
            web.get("/console/notifications", self.notifications),
        ]

    # --- sign-in ----------------------------------------------------------------------------

    async def root(self, _: web.Request) -> web.StreamResponse:
        """``/`` leads to the console (its sign-in form links nothing internal)."""
        return web.Response(status=302, headers={"Location": "/console", **NO_STORE})

    def _signed_in(self, request: web.Request) -> bool:
        return self._sessions.valid_session(request.cookies.get(COOKIE), self._clock())

    def _same_origin(self, request: web.Request) -> bool:
        allowed = [f"{request.scheme}://{request.host}"]
        if self._public_origin is not None:
            allowed.append(self._public_origin)
        return origin_allowed(
            request.headers.get("Origin"),
            allowed,
            fetch_site=request.headers.get("Sec-Fetch-Site"),
        )

    def _signed_in_response(self) -> web.StreamResponse:
        response = web.Response(status=303, headers={"Location": "/console", **NO_STORE})
        response.set_cookie(
            COOKIE,
            self._sessions.new_session(self._clock()),
            max_age=self._sessions.ttl_s,
            path=COOKIE_PATH,
            httponly=True,
            secure=self._secure,
            samesite="Strict",
        )
        return response

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        """The form's POST: the right key signs in; a wrong one is a 401 that changes nothing."""
        if not self._same_origin(request):
            return _sign_in_page("cross_origin", 403)
        form = await _form(request)
        if not key_matches(str(form.get("key", "")), self._api_key):
            log.info("console_sign_in_refused")
            return _sign_in_page("wrong_key", 401)
        log.info("console_signed_in")
        return self._signed_in_response()

    async def link_sign_in(self, request: web.Request) -> web.StreamResponse:
        """The sandbox banner's one-click link: a signed, expiring token (never the key)."""
        if not self._sandbox:
            raise web.HTTPNotFound()
        if not self._sessions.valid_link_token(request.query.get("token"), self._clock()):
            return _sign_in_page("link_expired", 401)
        log.info("console_signed_in", via="sandbox_link")
        return self._signed_in_response()

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        """Forget the session cookie and come back to the sign-in form."""
        if not self._same_origin(request):
            return _sign_in_page("cross_origin", 403)
        response = web.Response(status=303, headers={"Location": "/console", **NO_STORE})
        response.del_cookie(COOKIE, path=COOKIE_PATH)
        return response

    # --- pages ------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        """Limits, installations by status, ticket and token freshness, the last day's
        notifications, the install QR code."""
        if not self._signed_in(request):
            return _sign_in_page("sign_in", 200)
        now = datetime.fromtimestamp(self._clock(), UTC)
        quota, quota_error = await _attempt(self._auth.request(AuthRequest(op="quota")))
        installs, installs_error = await _attempt(self._installations())
        status, tokens_error = await _attempt(self._tokens.status())
        counts, notify_error = await _attempt(self._notify.counts(self._clock() - DAY_S))
        dead, dead_error = await _attempt(self._dead_letters())
        ticket, cached = (None, []) if status is None else freshness(status, now)
        return _console_page(
            "console_overview.html",
            page="overview",
            gauges=[] if quota is None else gauges(quota),
            kinds_zh=_KINDS_ZH,
            kinds_en=_KINDS_EN,
            quota_error=quota_error,
            by_status=None if installs is None else by_status(installs),
            installs_error=installs_error,
            ticket=ticket,
            tokens=cached,
            tokens_error=tokens_error,
            notify_counts=None
            if counts is None
            else {name: counts.get(name, 0) for name in NOTIFY_STATUSES},
            notify_error=notify_error,
            dead_letters=None if dead is None else sorted(dead.items()),
            dead_error=dead_error,
            duration=duration_text,
        )

    async def installations(self, request: web.Request) -> web.StreamResponse:
        """Each corp: its members, test or released, status, dates; the move button."""
        if not self._signed_in(request):
            return _sign_in_page("sign_in", 200)
        return await self._installations_page(moved=request.query.get("moved"))

    async def _installations_page(
        self, *, moved: str | None = None, refused: str | None = None, status: int = 200
    ) -> web.StreamResponse:
        installs, error = await _attempt(self._installations())
        return _console_page(
            "console_installations.html",
            status=status,
            page="installations",
            installations=installs or [],
            error=error,
            moved=moved,
            refused=refused,
            when=_when,
        )

    async def set_test(self, request: web.Request) -> web.StreamResponse:
        """Move one installation between test and released, through ``rpc.auth`` ``set_test``
        (the same op as ``POST /api/v1/installations/{corp_id}/test``); refusals are shown."""
        if not self._signed_in(request):
            return _sign_in_page("sign_in", 401)
        if not self._same_origin(request):
            return _sign_in_page("cross_origin", 403)
        corp_id = request.match_info["corp_id"]
        form = await _form(request)
        test = str(form.get("test", "")) == "1"
        try:
            reply = await self._auth.request(AuthRequest(op="set_test", corp_id=corp_id, test=test))
        except (ServiceError, ValidationError) as exc:
            return await self._installations_page(refused=_error_text(exc), status=503)
        refusal = reply.get("refused") if isinstance(reply, dict) else None
        if refusal:
            text = f"{refusal.get('limit')}: {refusal.get('reason')}"
            return await self._installations_page(refused=text, status=409)
        if not isinstance(reply, dict) or reply.get("installation") is None:
            return await self._installations_page(
                refused=f"no active installation for corp {corp_id}", status=404
            )
        log.info("console_set_test", corp_id=corp_id, test=test)
        location = f"/console/installations?moved={corp_id}"
        return web.Response(status=303, headers={"Location": location, **NO_STORE})

    async def notifications(self, request: web.Request) -> web.StreamResponse:
        """The latest final results, filterable by corp and status; never message content."""
        if not self._signed_in(request):
            return _sign_in_page("sign_in", 200)
        corp_id = request.query.get("corp_id", "").strip()[:128] or None
        chosen = request.query.get("status", "")
        status = next((name for name in NOTIFY_STATUSES if name == chosen), None)
        rows, error = await _attempt(
            self._notify.results(corp_id=corp_id, status=status, limit=100)
        )
        return _console_page(
            "console_notifications.html",
            page="notifications",
            rows=rows or [],
            error=error,
            corp_id=corp_id or "",
            chosen_status=status or "",
            statuses=NOTIFY_STATUSES,
            when=_when,
        )

    async def _installations(self) -> list[Installation]:
        body = await self._auth.request(AuthRequest(op="installations"))
        found = body.get("installations", []) if isinstance(body, dict) else []
        return [Installation.model_validate(item) for item in found]


def sandbox_sign_in_url(base_url: str, data_key: bytes, *, now: float | None = None) -> str:
    """The banner's one-click console sign-in link of a sandbox at ``base_url``: a signed
    token valid for an hour, carrying no key (the console accepts it in sandbox mode only)."""
    token = ConsoleSessions(data_key).new_link_token(time.time() if now is None else now)
    return f"{base_url.rstrip('/')}/console/login?token={token}"


async def _attempt(call: Awaitable[T]) -> tuple[T | None, str | None]:
    """The value of ``call``, or None and why: one panel unavailable is not a broken page."""
    try:
        return await call, None
    except (ServiceError, ValidationError, ValueError) as exc:
        return None, _error_text(exc)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return f"{type(exc).code}: {exc}"
    return "unexpected answer"


async def _form(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > _MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=_MAX_FORM_BYTES, actual_size=0)
    return dict(await request.post())


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _sign_in_page(outcome: str, status: int) -> web.Response:
    return _console_page("console_signin.html", status=status, outcome=outcome, page="sign_in")


def _console_page(template: str, /, *, status: int = 200, **values: Any) -> web.Response:
    values.setdefault("outcome", values.get("page", ""))
    response = html_page(template, status=status, **values)
    # The console's own forms then carry their Origin (no-referrer makes it "null").
    response.headers["Referrer-Policy"] = "same-origin"
    return response
