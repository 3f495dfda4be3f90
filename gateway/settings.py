"""The gateway's settings: shared fragments plus the callback limits it alone uses."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BusSettings, HttpSettings, LogSettings, WeComAppSettings


class GatewaySettings(WeComAppSettings, HttpSettings, BusSettings, LogSettings):
    """Environment of ``wecom-suite gateway`` (names in design.md and docs/configuration.md)."""

    wecom_receive_ids: str | None = None
    callback_timestamp_window_s: int = Field(600, ge=30, le=86_400)
    # Longer than the window, so any replay that passes the window check is still remembered.
    callback_replay_ttl_s: int = Field(1200, ge=60, le=86_400)
    callback_replay_cache_size: int = Field(200_000, ge=1000, le=10_000_000)
    callback_max_body_bytes: int = Field(65_536, ge=1024, le=10_485_760)
    # Instruction callbacks must be answered within 1000 ms; a confirm slower than this is
    # answered 503 so that WeCom retries rather than timing out.
    callback_publish_timeout_s: float = Field(0.5, gt=0, le=5)
