"""token_service's settings: shared fragments plus its refresh and lease timings."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BusSettings, HttpSettings, LogSettings, StoreSettings, WeComApiSettings


class TokenSettings(WeComApiSettings, StoreSettings):
    """What the token logic needs; the all-in-one process reuses it as it is."""

    # Refresh a cached token this long before WeCom's expiry, so no caller is handed a token
    # that dies in flight. Capped at a quarter of a token's lifetime (see domain.py).
    token_refresh_margin_s: float = Field(300.0, ge=0, le=3600)
    # How long a replica may hold a refresh lease. A holder that crashes blocks the others at
    # most this long; a refresh slower than this lets a second replica refresh too, so it is
    # well above TOKEN_WAIT_S plus a WeCom timeout.
    token_lease_s: float = Field(30.0, gt=0, le=300)
    # WeCom pushes a suite_ticket every 10 minutes and it lives 30: two missed pushes is the
    # moment to warn (protocol doc §5.1).
    token_ticket_warn_age_s: float = Field(1200.0, gt=0, le=86_400)
    # How long an RPC request may wait for a refresh another caller started.
    token_wait_s: float = Field(8.0, gt=0, le=60)


class TokenServiceSettings(TokenSettings, HttpSettings, BusSettings, LogSettings):
    """Environment of ``wecom-suite token-service`` (see docs/tokens.md).

    ``HTTP_PORT`` serves only ``/healthz``, ``/readyz`` and ``/metrics`` here; its default
    differs from the gateway's so both run side by side on one host.
    """

    http_port: int = Field(8082, ge=0, le=65535)
