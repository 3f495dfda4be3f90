"""``GET /install`` and ``GET /install/complete``: the website install flow (protocol doc §8.2–
§8.4) as the gateway serves it, and ``GET /install/qrcode``, the app's install QR code (§8.11).
Pages are plain HTML in Chinese and English; no JavaScript.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlencode

import structlog
from aiohttp import web

from gateway.web.install_qrcode import QR_STATE_PATTERN, AppQrCodes
from gateway.web.install_state import (
    APP_STATE_PATTERN,
    LIMIT_TEXTS,
    STATE_GRACE_S,
    InstallStateCodec,
)
from gateway.web.pages import NO_STORE, html_page
from gateway.web.rate_limit import RateLimiter
from shared.auth_client import AuthClient
from shared.bus.abc import Bus, BusError
from shared.bus.events import publish_event
from shared.contracts import (
    AuthRequest,
    InstallRedirectPayload,
    event_types,
    service_event,
    stable_event_id,
)
from shared.errors import ServiceError
from shared.tokens import TokensClient
from shared.wecom.api import WeComApiError, WeComClient, with_token

log = structlog.get_logger(__name__)

# How long /install/complete waits for auth_service before showing "still processing".
OUTCOME_WAIT_S: Final = 3.0
_MAX_CODE_BYTES: Final = 512  # §1.3: credentials are at most 512 bytes


def page(
    outcome: str,
    zh: tuple[str, str],
    en: tuple[str, str],
    *,
    status: int = 200,
    refresh_s: int | None = None,
) -> web.Response:
    """A small bilingual page, Chinese first; ``refresh_s`` reloads it (a wait that needs no
    JavaScript)."""
    return html_page(
        "install.html", status=status, outcome=outcome, zh=zh, en=en, refresh_s=refresh_s
    )


def closed_page() -> web.Response:
    """The page of an offline app (``INSTALLS_OPEN=false``)."""
    zh, en = LIMIT_TEXTS["installs_closed"]
    return page(
        "installs_closed",
        ("应用已下线", f"{zh}。"),
        ("The app is offline", f"Sorry: {en}."),
        status=403,
    )


class InstallHandlers:
    def __init__(
        self,
        *,
        bus: Bus,
        tokens: TokensClient,
        auth: AuthClient,
        wecom: WeComClient,
        states: InstallStateCodec,
        suite_id: str,
        install_base: str,
        public_base_url: str,
        rate_per_minute: int = 30,
        installs_open: bool = True,
        qrcodes: AppQrCodes | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self._installs_open = installs_open
        self._qrcodes = qrcodes
        self._tokens = tokens
        self._auth = auth
        self._wecom = wecom
        self._states = states
        self._suite_id = suite_id
        self._install_base = install_base.rstrip("/")
        self._complete_url = public_base_url.rstrip("/") + "/install/complete"
        self._clock = wall_clock
        # Each hit costs WeCom calls (a pre_auth_code, or an auth code exchange): a client
        # hammering these routes must not use up the app's WeCom quota.
        self._limiter = RateLimiter(rate_per_minute, 60.0)

    def _too_many(self, request: web.Request) -> web.Response | None:
        if self._limiter.allow(request.remote or "-", self._clock()):
            return None
        log.warning("install_rate_limited", path=request.path)
        return page(
            "rate_limited",
            ("请求过于频繁", "请稍后再试。"),
            ("Too many requests", "Please try again in a minute."),
            status=429,
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/install", self.install),
            web.get("/install/complete", self.complete),
            web.get("/install/qrcode", self.qrcode),
        ]

    async def qrcode(self, request: web.Request) -> web.StreamResponse:
        """The app's install QR code as ``image/png`` (§8.11); ``?state=`` (up to 32 letters
        and digits) comes back as ``app_state`` on the installs it brings."""
        if (limited := self._too_many(request)) is not None:
            return limited
        if not self._installs_open:
            return closed_page()
        app_state = request.query.get("state", "")
        if not QR_STATE_PATTERN.match(app_state):
            return page(
                "invalid",
                ("二维码参数无效", "state 只能包含字母和数字，最多 32 个。"),
                ("Invalid QR code link", "state may hold at most 32 letters and digits."),
                status=400,
            )
        if self._qrcodes is None:
            raise web.HTTPNotFound
        try:
            image = await self._qrcodes.png(app_state)
        except WeComApiError as exc:
            # WeCom serves the code only for a released ("online") app (§8.11).
            log.warning("app_qrcode_refused", errcode=exc.errcode)
            return page(
                "not_released",
                (
                    "暂时没有安装二维码",
                    "应用发布（上线）后才有安装二维码。请先在开发者中心发布应用"
                    f"（企业微信错误码 {exc.errcode}）。",
                ),
                (
                    "No install QR code yet",
                    "WeCom gives the app's QR code only once the app is released: release it in "
                    f"the developer centre first (WeCom errcode {exc.errcode}).",
                ),
                status=503,
            )
        except ServiceError as exc:
            log.warning("app_qrcode_unavailable", error=exc.code)
            return page(
                "unavailable",
                ("暂时无法获取二维码", "请稍后重试。"),
                ("The QR code is unavailable right now", f"Please try again shortly ({exc.code})."),
                status=503,
            )
        return web.Response(
            body=image,
            content_type="image/png",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def install(self, request: web.Request) -> web.StreamResponse:
        """A fresh pre_auth_code (never reused: one per install attempt, §8.2), the session
        info of a test or a formal install (§8.3), then WeCom's install page (§8.4)."""
        if (limited := self._too_many(request)) is not None:
            return limited
        if not self._installs_open:
            # Offline (seed §4.2): a new install would only be refused after WeCom's page.
            log.info("install_refused_offline")
            return closed_page()
        test = request.query.get("test") in ("1", "true")
        app_state = request.query.get("state", "")
        if not APP_STATE_PATTERN.match(app_state):
            return page(
                "invalid",
                ("安装链接无效", "state 只能包含字母和数字，最多 64 个。"),
                ("Invalid install link", "state may hold at most 64 letters and digits."),
                status=400,
            )
        try:
            code = (await self._tokens.get("pre_auth_code")).token
            await self._set_session_info(code, test=test)
        except ServiceError as exc:
            log.warning("install_start_failed", error=exc.code)
            return page(
                "unavailable",
                ("暂时无法开始安装", "请稍后重试。"),
                ("The install cannot start right now", f"Please try again shortly ({exc.code})."),
                status=503,
            )
        state = self._states.issue(test=test, now=self._clock(), app_state=app_state)
        query = urlencode(
            {
                "suite_id": self._suite_id,
                "pre_auth_code": code,
                "redirect_uri": self._complete_url,
                "state": state,
            }
        )
        raise web.HTTPFound(f"{self._install_base}/3rdapp/install?{query}", headers=NO_STORE)

    async def _set_session_info(self, pre_auth_code: str, *, test: bool) -> None:
        # auth_type 1 = test, 0 = formal (§8.3). Set for both: for an unreleased app the
        # install page is reported to fail without it (§8.3, community report).
        body = {
            "pre_auth_code": pre_auth_code,
            "session_info": {"appid": [], "auth_type": int(test)},
        }

        async def call(suite_token: str) -> object:
            return await self._wecom.post(
                "/cgi-bin/service/set_session_info",
                params={"suite_access_token": suite_token},
                body=body,
            )

        await with_token(self._tokens.source("suite"), call)

    async def complete(self, request: web.Request) -> web.StreamResponse:
        """WeCom's redirect after an install: hand the auth code to auth_service, wait a
        moment for the outcome, and say what happened."""
        if (limited := self._too_many(request)) is not None:
            return limited
        auth_code = request.query.get("auth_code", "").strip()
        if not auth_code or len(auth_code.encode()) > _MAX_CODE_BYTES:
            return page(
                "invalid",
                ("安装链接无效", "缺少授权码。请从应用的安装链接重新开始。"),
                (
                    "Invalid install link",
                    "The auth code is missing. Start again from the install link.",
                ),
                status=400,
            )
        state_raw = request.query.get("state")
        # Only installs started at /install come back here, with our signed state. Anything
        # else is not processed: each redirect costs a WeCom exchange, and an unsigned flood
        # would queue ahead of real callbacks. An authentic state past its expiry (a member
        # who lingered on WeCom's page) is still honoured, so no permanent code is lost.
        state = self._states.verify(state_raw, now=self._clock(), grace_s=STATE_GRACE_S)
        if state is None:
            log.warning("install_complete_unsigned_state")
            return page(
                "invalid",
                ("安装链接无效", "此安装不是从本应用的安装链接开始的。请从安装链接重新开始。"),
                (
                    "Invalid install link",
                    "This install did not start from this app's install link. Start again there.",
                ),
                status=400,
            )
        payload = InstallRedirectPayload(
            auth_code=auth_code,
            state=state_raw,
            state_valid=True,
            test=state.test,
            app_state=state.app_state or None,
        )
        try:
            await self._publish(payload)
            outcome = await self._auth.request(
                AuthRequest(op="install_outcome", auth_code=auth_code, wait_s=OUTCOME_WAIT_S)
            )
        except (BusError, ServiceError) as exc:
            log.warning("install_complete_failed", error=getattr(exc, "code", "error"))
            return page(
                "unavailable",
                ("暂时无法完成安装", "请稍后刷新本页。授权码十分钟内有效。"),
                (
                    "The install cannot be completed right now",
                    "Reload this page shortly; the auth code stays valid for 10 minutes.",
                ),
                status=503,
                refresh_s=5,
            )
        return outcome_page(outcome)

    async def _publish(self, payload: InstallRedirectPayload) -> None:
        envelope = service_event(
            event_types.INSTALL_REDIRECT,
            payload,
            # One id per auth code: a reload publishes the same event, which consumers drop.
            event_id=stable_event_id(event_types.INSTALL_REDIRECT, payload.auth_code),
            suite_id=self._suite_id,
            corp_id=None,
            occurred_at=datetime.fromtimestamp(self._clock(), UTC),
        )
        await publish_event(self._bus, envelope)


def outcome_page(outcome: dict[str, object]) -> web.Response:
    """The page for an ``install_outcome`` answer."""
    status = outcome.get("status")
    corp = str(outcome.get("corp_name") or outcome.get("corp_id") or "")
    if status == "installed":
        kind = "测试版" if outcome.get("test") else ""
        return page(
            "installed",
            ("安装成功", f"应用{kind}已安装到 {corp}。可以关闭本页，在企业微信中打开应用。"),
            (
                "Installed",
                f"The app is installed in {corp}. You can close this page and open "
                "the app in WeCom.",
            ),
        )
    if status == "refused":
        limit = str(outcome.get("limit") or "")
        zh, en = LIMIT_TEXTS.get(limit, ("已达到安装上限", "an install limit was reached"))
        return page(
            f"refused:{limit}",
            ("无法安装", f"{zh}。"),
            ("Not installed", f"Sorry: {en}."),
            status=403,
        )
    if status == "lost":
        return page(
            "lost",
            ("安装未完成", "企业微信已受理安装，但结果未能保存。请重新安装应用。"),
            (
                "The install did not complete",
                "WeCom accepted the install but its result was lost. Please install the app again.",
            ),
            status=410,
        )
    if status in ("expired", "ignored"):
        return page(
            "expired",
            ("授权码已失效", "授权码已使用或已过期（十分钟）。请从安装链接重新开始。"),
            (
                "The auth code is no longer valid",
                "It was used already or expired (10 minutes). Start again from the install link.",
            ),
            status=410,
        )
    return page(
        "processing",
        ("正在处理", "安装正在处理中，本页会自动刷新。"),
        ("Still processing", "The install is being processed; this page reloads by itself."),
        status=202,
        refresh_s=3,
    )
