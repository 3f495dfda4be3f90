"""The gateway's settings: shared fragments plus the callback limits and the member sign-in
settings it alone uses."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from gateway.web.oauth_codecs import origin_of
from shared.sandbox import SANDBOX_API_BASE
from shared.settings import (
    BusSettings,
    HttpSettings,
    InternalApiKey,
    LogSettings,
    StoreSettings,
    WeComApiSettings,
)

DEFAULT_OAUTH_BASE = "https://open.weixin.qq.com"
DEFAULT_INSTALL_BASE = "https://open.work.weixin.qq.com"


class GatewaySettings(WeComApiSettings, StoreSettings, HttpSettings, BusSettings, LogSettings):
    """Environment of ``wecom-suite gateway`` (names in design.md and docs/configuration.md;
    the sign-in settings in docs/oauth.md)."""

    # Signs cookies and states (DATA_KEY) and guards the internal API (INTERNAL_API_KEY).
    production_requires: ClassVar[tuple[str, ...]] = ("DATA_KEY", "INTERNAL_API_KEY")

    wecom_receive_ids: str | None = None
    callback_timestamp_window_s: int = Field(600, ge=30, le=86_400)
    # Longer than the window, so any replay that passes the window check is still remembered.
    callback_replay_ttl_s: int = Field(1200, ge=60, le=86_400)
    callback_replay_cache_size: int = Field(200_000, ge=1000, le=10_000_000)
    callback_max_body_bytes: int = Field(65_536, ge=1024, le=10_485_760)
    # Instruction callbacks must be answered within 1000 ms; a confirm slower than this is
    # answered 503 so that WeCom retries rather than timing out.
    callback_publish_timeout_s: float = Field(0.5, gt=0, le=5)

    # Member sign-in (OAuth) and JS-SDK signatures: docs/oauth.md.
    public_base_url: str = "http://127.0.0.1:8080"
    wecom_oauth_base: str | None = None
    wecom_trusted_domain: str | None = None
    oauth_session_ttl_s: int = Field(8 * 3600, ge=60, le=30 * 86_400)
    oauth_allowed_origins: str = ""

    # Install pages and the internal API: docs/installs.md.
    wecom_install_base: str | None = None
    internal_api_key: InternalApiKey | None = None
    # Requests per minute per client address to /install and /install/complete (0: no limit).
    install_rate_per_minute: int = Field(30, ge=0, le=100_000)
    # false: the app is offline: /install refuses (auth_service refuses new installs too).
    installs_open: bool = True
    # Requests per minute per client address to /oauth/callback (0: no limit).
    oauth_callback_rate_per_minute: int = Field(30, ge=0, le=100_000)

    @field_validator("public_base_url", "wecom_oauth_base", "wecom_install_base")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if origin_of(value) is None or "?" in value or "#" in value:
            raise ValueError("must be an http(s) URL without query or fragment")
        return value

    @field_validator("wecom_trusted_domain")
    @classmethod
    def _check_trusted_domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        origin = origin_of(f"https://{value.strip()}")
        if origin is None or "/" in value or "@" in value:
            raise ValueError("must be a host name with an optional port, e.g. app.example.com")
        return origin.removeprefix("https://")

    @field_validator("oauth_allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if origin_of(item) != item.lower().rstrip("/"):
                raise ValueError("must be comma-separated origins like https://app.example.com")
        return value

    @property
    def oauth_base(self) -> str:
        """Base of WeCom's OAuth authorize page (sandbox: the bundled simulator)."""
        if self.wecom_oauth_base:
            return self.wecom_oauth_base
        return SANDBOX_API_BASE if self.sandbox else DEFAULT_OAUTH_BASE

    @property
    def install_base(self) -> str:
        """Base of WeCom's install page (sandbox: the bundled simulator)."""
        if self.wecom_install_base:
            return self.wecom_install_base
        return SANDBOX_API_BASE if self.sandbox else DEFAULT_INSTALL_BASE

    @property
    def trusted_domain(self) -> str:
        """The app's trusted domain, ``host[:port]``: by default that of PUBLIC_BASE_URL."""
        if self.wecom_trusted_domain:
            return self.wecom_trusted_domain
        origin = origin_of(self.public_base_url) or ""  # never empty: checked at load
        return origin.split("://", 1)[-1]

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Origins a sign-in may return to: PUBLIC_BASE_URL's and OAUTH_ALLOWED_ORIGINS."""
        origins = {origin_of(self.public_base_url)}
        origins.update(origin_of(part) for part in self.oauth_allowed_origins.split(","))
        return frozenset(origin for origin in origins if origin is not None)

    @property
    def secure_cookies(self) -> bool:
        return self.public_base_url.lower().startswith("https://")
