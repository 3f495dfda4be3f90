"""``GET /admin``: the app's business-settings page (业务设置URL, seed §2.2.3), opened by a
corp's admin from WeCom's admin console.

WeCom appends a single-use ``auth_code``; ``service/get_login_info`` (provider token) says
who the admin is and of which corp. Only an admin of a corp that has the app installed gets
in: a signed admin session scoped to that corp (its own key, so a member's session is never
an admin's), then a page of that corp's installation. Bilingual, Chinese first, plain HTML.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiohttp import web

from gateway.web.oauth_codecs import InvalidToken, SignedCodec, derive_key
from gateway.web.pages import NO_STORE, html_page
from shared.auth_client import AuthClient
from shared.contracts import Installation
from shared.errors import ServiceError
from shared.tokens import TokensClient, TokenUnavailable
from shared.wecom.api import WeComApiError, WeComClient, with_token

log = structlog.get_logger(__name__)

GET_LOGIN_INFO: Final = "/cgi-bin/service/get_login_info"
ADMIN_COOKIE: Final = "wecom_admin"
ADMIN_KEY_PURPOSE: Final = b"wecom-suite/admin-session-v1"
# get_login_info's usertype: 1 creator, 2 internal admin, 3 external admin, 4 graded admin;
# 5 is a plain member.
ADMIN_USERTYPES: Final = frozenset({1, 2, 3, 4})
_MAX_CODE_BYTES: Final = 512

_STATUS_ZH: Final = {
    "active": "已安装",
    "revoked": "已卸载",
    "refused": "未获准安装",
    "lost": "需重新安装",
}


def admin_page(
    outcome: str,
    zh: tuple[str, str],
    en: tuple[str, str],
    *,
    status: int,
    installation: Installation | None = None,
) -> web.Response:
    """The business-settings page: the installation, or why there is none to show."""
    return html_page(
        "admin.html",
        status=status,
        outcome=outcome,
        title_zh=zh[0],
        detail_zh=zh[1],
        title_en=en[0],
        detail_en=en[1],
        inst=installation,
        status_zh="" if installation is None else _STATUS_ZH.get(installation.status, ""),
        installed_at=""
        if installation is None or installation.installed_at is None
        else installed_at_text(installation.installed_at),
    )


def _refused(outcome: str, zh: str, en: str, status: int = 403) -> web.Response:
    return admin_page(
        outcome, ("无法打开业务设置", zh), ("Business settings unavailable", en), status=status
    )


class AdminHandlers:
    """``GET /admin`` and its admin session."""

    def __init__(
        self,
        *,
        tokens: TokensClient,
        auth: AuthClient,
        wecom: WeComClient,
        data_key: bytes,
        session_ttl_s: int,
        secure_cookies: bool,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = tokens
        self._auth = auth
        self._wecom = wecom
        self._codec = SignedCodec(derive_key(data_key, ADMIN_KEY_PURPOSE))
        self._ttl_s = session_ttl_s
        self._secure = secure_cookies
        self._clock = wall_clock

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin", self.admin)]

    async def admin(self, request: web.Request) -> web.StreamResponse:
        """With ``auth_code``: sign the admin in and come back without it; else the page of
        the signed-in admin's corp."""
        code = request.query.get("auth_code")
        if code is not None:
            return await self._sign_in(code)
        corp_id = self._session_corp(request.cookies.get(ADMIN_COOKIE))
        if corp_id is None:
            return _refused(
                "not_signed_in",
                "请从企业微信管理后台打开本页（应用的业务设置）。",
                "Open this page from WeCom's admin console (the app's business settings).",
                status=401,
            )
        installation = await self._auth.installation(corp_id)
        if installation is None:
            return _refused(
                "not_installed", "本企业未安装此应用。", "The app is not installed here."
            )
        return admin_page(
            "installation",
            ("业务设置", ""),
            ("Business settings", ""),
            status=200,
            installation=installation,
        )

    async def _sign_in(self, code: str) -> web.StreamResponse:
        admin = await self._admin_of(code)
        if isinstance(admin, web.Response):
            return admin
        corp_id, user_id = admin
        now = self._clock()
        payload = {"corp_id": corp_id, "user_id": user_id, "exp": int(now) + self._ttl_s}
        log.info("admin_signed_in", corp_id=corp_id)
        # Back to /admin without the code: it is single use and must not stay in the history.
        response = web.Response(status=303, headers={"Location": "/admin", **NO_STORE})
        response.set_cookie(
            ADMIN_COOKIE,
            self._codec.encode(payload),
            max_age=self._ttl_s,
            path="/admin",
            httponly=True,
            secure=self._secure,
            samesite="Lax",
        )
        return response

    async def _login_or_refusal(self, code: str) -> dict[str, Any] | web.Response:
        """WeCom's ``get_login_info`` answer for ``code``, or the page that refuses it."""
        if not code or len(code.encode()) > _MAX_CODE_BYTES:
            return _refused(
                "invalid_code", "登录链接无效。", "This sign-in link is not valid.", 400
            )
        try:
            return await self._login_info(code)
        except TokenUnavailable as exc:
            return _token_refusal(exc)
        except WeComApiError as exc:
            # Forged, used, expired or another provider's code: WeCom says who it is not.
            log.info("admin_login_refused", errcode=exc.errcode)
            return _refused(
                "invalid_code",
                "登录链接无效、已使用或已过期，请从企业微信管理后台重新打开。",
                "This sign-in link is not valid, was used or expired: open the page again from "
                "WeCom's admin console.",
            )
        except ServiceError as exc:
            return _refused("unavailable", "请稍后重试。", f"Try again shortly ({exc.code}).", 503)

    async def _admin_of(self, code: str) -> tuple[str, str] | web.Response:
        """(corp, admin) of an auth code, or the page that refuses it."""
        info = await self._login_or_refusal(code)
        if isinstance(info, web.Response):
            return info
        corp_id = (info.get("corp_info") or {}).get("corpid")
        user = info.get("user_info") or {}
        if not isinstance(corp_id, str) or not corp_id:
            return _refused("invalid_code", "登录信息不完整。", "WeCom's answer named no corp.")
        if info.get("usertype") not in ADMIN_USERTYPES:
            return _refused(
                "not_admin",
                "只有企业管理员可以打开业务设置。",
                "Only an admin of the enterprise may open the business settings.",
            )
        installation = await self._auth.installation(corp_id)
        if installation is None or installation.status != "active":
            return _refused(
                "not_installed",
                "本企业未安装此应用。",
                "The app is not installed in your enterprise.",
            )
        return corp_id, str(user.get("userid") or "")

    async def _login_info(self, code: str) -> dict[str, Any]:
        async def call(provider_token: str) -> dict[str, Any]:
            return await self._wecom.post(
                GET_LOGIN_INFO, params={"access_token": provider_token}, body={"auth_code": code}
            )

        return await with_token(self._tokens.source("provider"), call)

    def _session_corp(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            payload = self._codec.decode(value, now=self._clock())
        except InvalidToken:
            return None
        corp_id = payload.get("corp_id")
        return corp_id if isinstance(corp_id, str) and corp_id else None


def _token_refusal(exc: TokenUnavailable) -> web.Response:
    if exc.error_code == "not_configured":
        return _refused(
            "not_configured",
            "业务设置页需要服务商凭证：请设置 WECOM_PROVIDER_CORPID 和 WECOM_PROVIDER_SECRET。",
            "The business-settings page needs the provider credentials: set "
            "WECOM_PROVIDER_CORPID and WECOM_PROVIDER_SECRET.",
            status=503,
        )
    return _refused("unavailable", "请稍后重试。", f"Try again shortly ({exc.error_code}).", 503)


def installed_at_text(moment: datetime) -> str:
    """How the page shows a time: minutes, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
