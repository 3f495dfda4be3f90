"""The notifier's Prometheus metrics; every series of a known label exists at 0 from the
start (an alert on a rate of failures sees 0, not nothing, before the first one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, get_args

from prometheus_client import CollectorRegistry, Counter

from notifier.domain import FailureKind
from shared.metrics import with_zero_series
from shared.notify import NotifyStatus

# Why a request went back to the bus: a retryable failure, or another delivery owning it.
RETRY_REASONS: Final = (
    *(kind for kind in get_args(FailureKind) if kind != "permanent"),
    "claimed_elsewhere",
    "claim_lost",
)
LIMIT_WINDOWS: Final = ("member", "app")
LIMIT_HOW: Final = ("held", "scheduled")
MEDIA_SOURCES: Final = ("uploaded", "cached")


@dataclass(frozen=True, slots=True)
class NotifierMetrics:
    results: Counter
    retries: Counter
    limit_waits: Counter
    media: Counter
    republished: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifierMetrics:
        return cls(
            results=with_zero_series(
                Counter(
                    "wecom_notify_results",
                    "notify.result events published, by status (sent, partial, failed, expired).",
                    ["status"],
                    registry=registry,
                ),
                get_args(NotifyStatus),
            ),
            retries=with_zero_series(
                Counter(
                    "wecom_notify_retries",
                    "Requests handed back to the bus's delayed retry, by reason.",
                    ["reason"],
                    registry=registry,
                ),
                RETRY_REASONS,
            ),
            limit_waits=with_zero_series(
                Counter(
                    "wecom_notify_limit_waits",
                    "Sends held back by a send limit, by window (member, app) and how "
                    "(held in the handler, or scheduled: kept in the store until due).",
                    ["window", "how"],
                    registry=registry,
                ),
                LIMIT_WINDOWS,
                LIMIT_HOW,
            ),
            media=with_zero_series(
                Counter(
                    "wecom_notify_media",
                    "Inline files, by source (uploaded, cached).",
                    ["source"],
                    registry=registry,
                ),
                MEDIA_SOURCES,
            ),
            republished=Counter(
                "wecom_notify_duplicates",
                "Redelivered or republished requests answered from their stored result.",
                registry=registry,
            ),
        )
