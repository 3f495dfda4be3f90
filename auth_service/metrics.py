"""auth_service's Prometheus metrics: installations by status and kind, admissions and
refusals by reason, quota use and limit per kind, exchanges by outcome, lost installs."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from auth_service.domain import LIMIT_NAMES, InstallationRecord, Limits, Usage

INSTALL_STATUSES = ("active", "revoked", "refused", "lost")


def kind_of(test: bool) -> str:
    """The ``kind`` label: test or released."""
    return "test" if test else "released"


@dataclass(frozen=True, slots=True)
class AuthMetrics:
    installations: Gauge
    admissions: Counter
    quota_used: Gauge
    quota_limit: Gauge
    exchanges: Counter
    lost: Counter
    other_suite: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> AuthMetrics:
        return cls(
            installations=Gauge(
                "wecom_auth_installations",
                "Installations known to auth_service, by status and kind (test or released).",
                ["status", "kind"],
                registry=registry,
            ),
            admissions=Counter(
                "wecom_auth_admissions",
                "Admissions against the install limits, by kind, outcome (admitted or "
                "refused) and reason (the limit that refused; empty when admitted).",
                ["kind", "outcome", "reason"],
                registry=registry,
            ),
            quota_used=Gauge(
                "wecom_auth_quota_used",
                "Install-limit use per limit (corps and users count released installs only).",
                ["limit"],
                registry=registry,
            ),
            quota_limit=Gauge(
                "wecom_auth_quota_limit",
                "Install limits in force (INSTALL_LIMIT_*), per limit.",
                ["limit"],
                registry=registry,
            ),
            exchanges=Counter(
                "wecom_auth_exchanges",
                "Auth-code exchanges with WeCom, by outcome (exchanged, unusable, lost, "
                "not_sent, failed).",
                ["outcome"],
                registry=registry,
            ),
            lost=Counter(
                "wecom_auth_lost_installs",
                "Installs WeCom has whose permanent code never reached us (auth.lost): each "
                "one's member must install again.",
                registry=registry,
            ),
            other_suite=Counter(
                "wecom_auth_events_other_suite",
                "Instruction callbacks (command.*) ignored because they carry another suite_id.",
                ["type"],
                registry=registry,
            ),
        )

    def record_quota(self, usage: Usage, limits: Limits) -> None:
        for name in LIMIT_NAMES:
            self.quota_used.labels(name).set(usage.of(name))
            self.quota_limit.labels(name).set(limits.of(name))

    def record_installations(self, records: Iterable[InstallationRecord]) -> None:
        counts: Tally[tuple[str, str]] = Tally(
            (record.status, kind_of(record.test)) for record in records
        )
        for status in INSTALL_STATUSES:
            for kind in ("test", "released"):
                self.installations.labels(status, kind).set(counts.get((status, kind), 0))
