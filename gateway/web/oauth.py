"""HTTP handlers of member sign-in (protocol doc §9): ``/oauth/login``, ``/oauth/callback``,
``/oauth/me`` and ``/oauth/logout``. The browser routes answer HTML pages (Chinese and
English) on failure; the JSON routes answer ``{"error": {"code", "message"}}``.

Codes, tokens and cookie values are never logged: only outcomes, reasons and member ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web
from pydantic import ValidationError

from gateway.replay import ReplayCache
from gateway.settings import GatewaySettings
from gateway.web.oauth_codecs import (
    STATE_TTL_S,
    Identity,
    InvalidNext,
    InvalidState,
    LoginState,
    NextPolicy,
    NotAMember,
    NotSignedIn,
    Session,
    SessionCodec,
    StateCodec,
    identity_from_userinfo,
    origin_of,
    safe_next,
)
from gateway.web.pages import NO_STORE, html_page
from gateway.web.rate_limit import RateLimiter
from shared.auth_client import AuthClient, AuthUnavailable
from shared.contracts import AuthRequest, SessionStatus
from shared.errors import Forbidden, ServiceError
from shared.tokens import TokensClient
from shared.wecom.api import WeComApiError, WeComClient, WeComCredentialError, with_token

log = structlog.get_logger(__name__)

SESSION_COOKIE: Final = "wecom_session"
STATE_COOKIE: Final = "wecom_oauth_state"
STATE_COOKIE_PATH: Final = "/oauth/"
USERINFO_PATH: Final = "/cgi-bin/service/auth/getuserinfo3rd"
MAX_CODE_BYTES: Final = 512  # §1.3


@dataclass(frozen=True)
class SignInConfig:
    """What the sign-in routes need from the settings."""

    suite_id: str
    oauth_base: str
    callback_url: str
    next_policy: NextPolicy
    secure_cookies: bool

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> SignInConfig:
        return cls(
            suite_id=settings.suite_id,
            oauth_base=settings.oauth_base,
            callback_url=f"{settings.public_base_url}/oauth/callback",
            next_policy=NextPolicy(settings.trusted_domain, settings.allowed_origins),
            secure_cookies=settings.secure_cookies,
        )

    def authorize_url(self, state: str) -> str:
        """§9.1: the SuiteID as appid, silent ``snsapi_base``, ``#wechat_redirect`` last."""
        query = urlencode(
            {
                "appid": self.suite_id,
                "redirect_uri": self.callback_url,
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
            },
            quote_via=quote,
        )
        return f"{self.oauth_base}/connect/oauth2/authorize?{query}#wechat_redirect"


# code → (status, 中文标题, 中文说明, English title, English detail)
_PAGES: Final[dict[str, tuple[int, str, str, str, str]]] = {
    "invalid_next": (
        400,
        "无效的返回地址",
        "登录后返回的地址（next）必须是本站的路径，或允许的来源上的网址。",
        "Invalid return address",
        "The next parameter must be a path on this site or a URL on an allowed origin.",
    ),
    "invalid_state": (
        400,
        "登录已失效",
        "登录链接已过期、被修改、已使用，或是在另一个浏览器中发起的。请重新登录。",
        "Sign-in expired or invalid",
        "The sign-in link expired, was altered or already used, or was started in another "
        "browser. Please sign in again.",
    ),
    "invalid_code": (
        400,
        "授权码无效",
        "授权码缺失、无效、已使用或已过期（每个授权码只能使用一次，有效期 5 分钟）。请重新登录。",
        "Invalid sign-in code",
        "The code is missing, invalid, already used or expired (a code works once, for 5 "
        "minutes). Please sign in again.",
    ),
    "not_in_range": (
        403,
        "无法使用该应用",
        "你不在该应用的可见范围内，或尚未安装该应用。",
        "The app is not available to you",
        "You are not in the app's visible range, or have not installed it.",
    ),
    "not_a_member": (
        403,
        "不是企业成员",
        "只有企业微信中企业的成员可以登录。",
        "Not a member of an enterprise",
        "Only members of a WeCom enterprise can sign in.",
    ),
    "wecom_error": (
        502,
        "企业微信拒绝了登录",
        "企业微信拒绝了登录请求。请稍后再试，或联系应用的管理员。",
        "WeCom refused the sign-in",
        "WeCom refused the sign-in. Try again later or contact the app's administrator.",
    ),
    "rate_limited": (
        429,
        "请求过于频繁",
        "登录请求过于频繁，请稍后再试。",
        "Too many requests",
        "Too many sign-in attempts from your address. Please try again in a minute.",
    ),
    "unavailable": (
        503,
        "暂时无法登录",
        "登录所需的服务暂时不可用，请稍后再试。",
        "Sign-in is temporarily unavailable",
        "A service that sign-in needs is unavailable. Please try again in a minute.",
    ),
}


def error_page(code: str, *, retry: str = "/oauth/login") -> web.Response:
    """A small HTML page (Chinese and English) for a browser route's failure."""
    status, title_zh, detail_zh, title_en, detail_en = _PAGES[code]
    return html_page(
        "oauth_error.html",
        status=status,
        title_zh=title_zh,
        detail_zh=detail_zh,
        title_en=title_en,
        detail_en=detail_en,
        retry=retry,
        code=code,
    )


def page_code_of(exc: ServiceError) -> str:
    """Which page explains a failed code exchange (protocol doc §12)."""
    if isinstance(exc, NotAMember):
        return "not_a_member"
    if isinstance(exc, WeComApiError):
        if exc.errcode == 40029:
            return "invalid_code"
        if exc.errcode in (50002, 48004):
            return "not_in_range"
        return "wecom_error"
    return "unavailable"


def current_session(request: web.Request, sessions: SessionCodec, now: float) -> Session:
    """The request's signed-in member, by the cookie alone. Raises NotSignedIn."""
    return sessions.read(request.cookies.get(SESSION_COOKIE), now=now)


async def live_session(
    request: web.Request, sessions: SessionCodec, auth: AuthClient, now: float
) -> tuple[Session, SessionStatus]:
    """The request's signed-in member, checked with auth_service: not signed out of, and its
    corp not uninstalled. One ``rpc.auth`` call and no cache, so an ended session is refused
    by every replica at once.

    Raises:
        NotSignedIn: no valid cookie, or the session is over.
        AuthUnavailable, RpcTimeout, BusError: auth_service did not answer (503).
    """
    session = current_session(request, sessions, now)
    body = await auth.request(
        AuthRequest(op="session", corp_id=session.corp_id, session_id=session.sid)
    )
    try:
        status = SessionStatus.model_validate(body)
    except ValidationError:
        raise AuthUnavailable("bad_reply", "auth_service answered an unexpected shape") from None
    if status.ended:
        raise NotSignedIn("sign in again: you signed out of this session")
    if status.over:
        raise NotSignedIn("sign in again: the app was removed from your enterprise")
    return session, status


class SignInHandlers:
    """The four ``/oauth/`` routes."""

    def __init__(
        self,
        config: SignInConfig,
        states: StateCodec,
        sessions: SessionCodec,
        tokens: TokensClient,
        api: WeComClient,
        auth: AuthClient,
        *,
        callback_rate_per_minute: int = 30,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._states = states
        self._sessions = sessions
        self._tokens = tokens
        self._auth = auth
        self._api = api
        self._wall_clock = wall_clock
        # States already spent in this process: a replayed callback is refused before WeCom
        # sees its code again (WeCom's own single use, 40029, covers other replicas).
        self._spent = ReplayCache(STATE_TTL_S + 60, 100_000)
        # Each callback with a fresh state costs a WeCom call (the code exchange), and states
        # are free to get from /oauth/login: limit callbacks per client like /install.
        self._limiter = RateLimiter(callback_rate_per_minute, 60.0)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/oauth/login", self.login),
            web.get("/oauth/callback", self.callback),
            web.get("/oauth/me", self.me),
            web.post("/oauth/logout", self.logout),
        ]

    def _set_cookie(
        self, response: web.StreamResponse, name: str, value: str, *, max_age: int, path: str
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            secure=self._config.secure_cookies,
            samesite="Lax",
        )

    def _clear_state(self, response: web.StreamResponse) -> web.StreamResponse:
        response.del_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        """Redirect to WeCom's authorize page with a fresh state bound to this browser."""
        try:
            next_url = safe_next(request.query.get("next"), self._config.next_policy)
        except InvalidNext:
            log.warning("oauth_login_refused", reason="invalid_next")
            return error_page("invalid_next")
        state, param, cookie = self._states.begin(next_url, now=self._wall_clock())
        location = self._config.authorize_url(param)
        response = web.Response(status=302, headers={"Location": location, **NO_STORE})
        max_age = max(state.exp - int(self._wall_clock()), 1)
        self._set_cookie(response, STATE_COOKIE, cookie, max_age=max_age, path=STATE_COOKIE_PATH)
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        """Check the state, exchange the code, set the session cookie, go to ``next``."""
        now = self._wall_clock()
        if not self._limiter.allow(request.remote or "-", now):
            log.warning("oauth_callback_refused", reason="rate_limited")
            return error_page("rate_limited")
        try:
            state = self._verify_state(request, now)
        except InvalidState as exc:
            log.warning("oauth_callback_refused", reason="invalid_state", why=exc.why)
            return self._clear_state(error_page("invalid_state"))
        retry = "/oauth/login?" + urlencode({"next": state.next})
        code = request.query.get("code", "")
        if not code or len(code.encode()) > MAX_CODE_BYTES or not code.isprintable():
            log.warning("oauth_callback_refused", reason="invalid_code")
            return self._clear_state(error_page("invalid_code", retry=retry))
        try:
            identity = await self._exchange(code)
        except ServiceError as exc:
            page = page_code_of(exc)
            log.warning(
                "oauth_callback_refused",
                reason=page,
                error=exc.code,
                errcode=getattr(exc, "errcode", None),
                hint=exc.hint if isinstance(exc, WeComCredentialError) else None,
            )
            return self._clear_state(error_page(page, retry=retry))
        session, value = self._sessions.issue(identity, now=now)
        log.info("oauth_signed_in", corp_id=session.corp_id, user_id=session.user_id)
        response = web.Response(status=302, headers={"Location": state.next, **NO_STORE})
        self._set_cookie(response, SESSION_COOKIE, value, max_age=self._sessions.ttl_s, path="/")
        return self._clear_state(response)

    def _verify_state(self, request: web.Request, now: float) -> LoginState:
        """The sign-in this callback completes, spent so that it completes only once."""
        state = self._states.verify(
            request.query.get("state"), request.cookies.get(STATE_COOKIE), now=now
        )
        key = state.nonce.encode()
        if self._spent.seen(key, now):
            raise InvalidState("state already used")
        self._spent.add(key, now)
        return state

    async def _exchange(self, code: str) -> Identity:
        """§9.2 with the suite token, refreshed once if WeCom rejects it."""

        async def userinfo(token: str) -> dict[str, Any]:
            params = {"suite_access_token": token, "code": code}
            return await self._api.get(USERINFO_PATH, params=params)

        answer = await with_token(self._tokens.source("suite"), userinfo)
        return identity_from_userinfo(answer)

    async def me(self, request: web.Request) -> web.StreamResponse:
        """The signed-in member as JSON; 401 ``not_signed_in`` without a valid session, after
        a sign-out (even with the old cookie replayed) and once the corp uninstalled."""
        session, _ = await live_session(request, self._sessions, self._auth, self._wall_clock())
        body = {
            "corp_id": session.corp_id,
            "user_id": session.user_id,
            "open_userid": session.open_userid,
            "expires_at": datetime.fromtimestamp(session.exp, UTC).isoformat(),
        }
        return web.json_response(body, headers=NO_STORE)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """End the session server-side (``rpc.auth`` ``end_session``: a copy of the cookie is
        refused from now on, by every replica) and forget the cookie. A cross-site form cannot
        sign the member out; if auth_service does not answer, the sign-out fails (503) and the
        cookie stays, so that the member can try again."""
        origin = request.headers.get("Origin")
        if origin is not None and origin_of(origin) not in self._config.next_policy.allowed_origins:
            raise Forbidden("cross-origin sign-out refused")
        try:
            session: Session | None = current_session(request, self._sessions, self._wall_clock())
        except NotSignedIn:
            session = None  # nothing to end: just forget whatever cookie there is
        if session is not None:
            await self._auth.request(
                AuthRequest(op="end_session", session_id=session.sid, expires_at=session.exp)
            )
            log.info("oauth_signed_out", corp_id=session.corp_id, user_id=session.user_id)
        response = web.json_response({"signed_out": True}, headers=NO_STORE)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response
