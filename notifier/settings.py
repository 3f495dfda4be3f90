"""The notifier's settings: shared fragments plus its ``NOTIFY_*`` limits and timings."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import BusSettings, HttpSettings, LogSettings, StoreSettings, WeComApiSettings


class NotifierSettings(WeComApiSettings, StoreSettings):
    """What the notifier logic needs; the all-in-one process reuses it as it is."""

    # The notifier seals nothing at rest: DATA_KEY is not needed with real credentials.
    production_requires: ClassVar[tuple[str, ...]] = ()

    # Calls to WeCom for one request (first try included) before it is reported failed.
    notify_max_attempts: int = Field(5, ge=1, le=10)
    # Protocol doc §11.7, per app and member: 30/minute and 1000/hour. 0 switches one off.
    notify_limit_member_per_minute: int = Field(30, ge=0)
    notify_limit_member_per_hour: int = Field(1000, ge=0)
    # Per app per day: seats × 200 person-times; the seat count of a member-authorised corp
    # is unknown, so this is a budget the operator sets (0: off).
    notify_limit_app_per_day: int = Field(20_000, ge=0)
    # Window lengths, configurable so tests can shorten them.
    notify_limit_minute_s: float = Field(60.0, gt=0, le=86_400)
    notify_limit_hour_s: float = Field(3600.0, gt=0, le=86_400)
    notify_limit_day_s: float = Field(86_400.0, gt=0, le=604_800)
    # Extra seconds every window is stretched by: covers clock skew between replicas and
    # WeCom, and the time a send takes to reach WeCom after its slot was counted.
    notify_limit_margin_s: float = Field(1.0, ge=0, le=600)
    # Person-times an @all, a party or a tag counts against the per-app budget: an
    # individual developer's app reaches at most 100 members (INSTALL_LIMIT_USERS).
    notify_all_recipients: int = Field(100, ge=1, le=100_000)
    # A message whose send slot is this close waits for it inside its handler; a later one
    # is kept in the schedule (the store) and delivered again shortly before its slot.
    notify_limit_hold_s: float = Field(10.0, ge=0, le=300)
    # Reuse an uploaded media_id until this long before WeCom's 3 days run out.
    notify_media_margin_s: float = Field(3600.0, ge=0, le=86_400)
    # The lease of one replica's claim on a request: renewed every third of it while the
    # replica works on it, so a dead replica's requests resume within it.
    notify_claim_s: float = Field(15.0, ge=3, le=3600)
    # How long request records (the idempotency memory) are kept.
    notify_record_ttl_s: float = Field(7 * 86_400.0, gt=0)
    notify_prefetch: int = Field(16, ge=1, le=1000)
    notify_rpc_timeout_s: float = Field(10.0, gt=0, le=60)


class NotifierServiceSettings(NotifierSettings, HttpSettings, BusSettings, LogSettings):
    """Environment of ``wecom-suite notifier`` (see docs/notifier.md).

    ``HTTP_PORT`` serves only ``/healthz``, ``/readyz`` and ``/metrics``.
    """

    http_port: int = Field(8083, ge=0, le=65535)
