"""The notifier's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.metrics import wecom_call_histogram


@dataclass(frozen=True, slots=True)
class NotifierMetrics:
    results: Counter
    retries: Counter
    limit_waits: Counter
    media: Counter
    republished: Counter
    wecom_seconds: Histogram

    def observe_wecom_call(self, path: str, outcome: str, seconds: float) -> None:
        """The WeComClient observer: latency by API path and outcome."""
        self.wecom_seconds.labels(path, outcome).observe(seconds)

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NotifierMetrics:
        return cls(
            results=Counter(
                "wecom_notify_results",
                "notify.result events published, by status (sent, partial, failed, expired).",
                ["status"],
                registry=registry,
            ),
            retries=Counter(
                "wecom_notify_retries",
                "Requests handed back to the bus's delayed retry, by reason.",
                ["reason"],
                registry=registry,
            ),
            limit_waits=Counter(
                "wecom_notify_limit_waits",
                "Sends held back by a send limit, by window (member, app) and how "
                "(held in the handler, or scheduled: kept in the store until due).",
                ["window", "how"],
                registry=registry,
            ),
            media=Counter(
                "wecom_notify_media",
                "Inline files, by source (uploaded, cached).",
                ["source"],
                registry=registry,
            ),
            republished=Counter(
                "wecom_notify_duplicates",
                "Redelivered or republished requests answered from their stored result.",
                registry=registry,
            ),
            wecom_seconds=wecom_call_histogram(registry),
        )
