"""Pure token logic: which token a request names, when a cached one may be served, which
suite_ticket is newest, how grant events apply. No I/O here, so all of it is unit-tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from shared.contracts import TokenKind, TokenRequest
from shared.errors import ServiceError

# WeCom's own token kinds; ``pre_auth_code`` is not cached (one per install attempt, §8.2).
CachedKind = Literal["suite", "provider", "corp", "jsapi", "agent_jsapi"]


class NotReady(ServiceError):
    """No suite_ticket has arrived yet, so no suite token can be had."""

    code = "not_ready"
    status = 503
    retryable = True
    reason = (
        "no suite_ticket yet: WeCom pushes one to the instruction callback URL every 10 "
        "minutes (or push one from the developer centre); tokens are served once it arrives"
    )


class NotInstalled(ServiceError):
    """The corp has no valid grant (never installed, or uninstalled)."""

    code = "not_installed"
    status = 404
    reason = "the app is not installed in this corp"


class NotConfigured(ServiceError):
    code = "not_configured"
    status = 503
    reason = "a credential this token needs is not configured"


class RefreshInProgress(ServiceError):
    """Another replica holds the refresh and did not finish within the wait."""

    code = "refresh_in_progress"
    status = 503
    retryable = True
    reason = "another replica is refreshing this token; retry shortly"


@dataclass(frozen=True, slots=True)
class TokenKey:
    """One cached token: its kind and, for corp-level kinds, the corp."""

    kind: CachedKind
    corp_id: str | None = None

    @property
    def name(self) -> str:
        """The key the token is stored and single-flighted under."""
        return self.kind if self.corp_id is None else f"{self.kind}:{self.corp_id}"


def key_for(request: TokenRequest) -> TokenKey:
    """The cached token a request asks for (``pre_auth_code`` is never cached).

    ``agent_id`` is not part of the key: a third-party app has one agent per corp, and the
    corp token WeCom issues for a (suite, corp) pair already belongs to that agent.
    """
    kind: TokenKind = request.kind
    if kind == "pre_auth_code":
        raise ValueError("pre_auth_code is not a cached token")
    return TokenKey(kind, request.corp_id)


def corp_keys(corp_id: str) -> tuple[TokenKey, ...]:
    """Every cached token that belongs to a corp (dropped when its grant changes)."""
    return (
        TokenKey("corp", corp_id),
        TokenKey("jsapi", corp_id),
        TokenKey("agent_jsapi", corp_id),
    )


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token as WeCom issued it. Times are Unix seconds (shared by every replica)."""

    value: str
    expires_at: float
    fetched_at: float

    def margin(self, configured: float) -> float:
        """The refresh margin for this token: the configured one, but never more than a
        quarter of its lifetime, so a short-lived token (a test TTL) is still served."""
        return min(configured, max(0.0, self.expires_at - self.fetched_at) / 4)

    def is_fresh(self, now: float, margin: float) -> bool:
        return now < self.expires_at - self.margin(margin)


def servable(cached: CachedToken | None, *, now: float, margin: float, reject: str | None) -> bool:
    """Whether ``cached`` may be handed out: present, not near expiry, and not the token a
    caller reported stale (``reject``)."""
    return cached is not None and cached.value != reject and cached.is_fresh(now, margin)


def token_from_answer(value: object, expires_in: object, *, now: float) -> CachedToken:
    """A token from WeCom's ``…_token``/``ticket`` and ``expires_in`` fields.

    Raises:
        ValueError: the answer lacks a usable token or lifetime.
    """
    if not isinstance(value, str) or not value:
        raise ValueError("the answer carries no token")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        raise ValueError("the answer carries no positive expires_in")
    return CachedToken(value=value, expires_at=now + float(expires_in), fetched_at=now)


@dataclass(frozen=True, slots=True)
class SuiteTicket:
    """The newest suite_ticket: its value and WeCom's ``TimeStamp`` (Unix seconds)."""

    value: str
    timestamp: float
    received_at: float


def is_newer_ticket(candidate: SuiteTicket, current: SuiteTicket | None) -> bool:
    """Keep the newest ticket by WeCom's TimeStamp: a retried or reordered older push must
    never replace a newer ticket (WeCom accepts only the latest one, 40085)."""
    if current is None:
        return True
    if candidate.timestamp != current.timestamp:
        return candidate.timestamp > current.timestamp
    # Same second: two distinct pushes are possible (a manual push right after a scheduled
    # one); the later arrival is the one WeCom just issued.
    return candidate.value != current.value and candidate.received_at > current.received_at


@dataclass(frozen=True, slots=True)
class CorpGrant:
    """A corp's grant as token_service keeps it: the permanent code (clear here, sealed in the
    store), the agent, and the time of the event that last changed it."""

    corp_id: str
    permanent_code: str | None
    agent_id: int | None
    changed_at: float
    revoked: bool = False


GrantChange = Literal["granted", "changed", "revoked"]


def apply_grant_event(
    current: CorpGrant | None,
    change: GrantChange,
    *,
    corp_id: str,
    occurred_at: float,
    permanent_code: str | None = None,
    agent_id: int | None = None,
) -> CorpGrant | None:
    """The grant after an ``auth.*`` event, or None when the event changes nothing.

    Events are applied in the order they happened, not the order they arrive: one older than
    the grant's last change is ignored, so a redelivered ``auth.granted`` cannot resurrect a
    grant that was revoked after it (a revocation is kept as a tombstone for this reason).
    """
    # Whole seconds: WeCom's TimeStamp has no finer grain than our own clock's stamps, so an
    # event in the same second as the last change is not older (the later arrival wins).
    if current is not None and math.floor(occurred_at) < math.floor(current.changed_at):
        return None
    if change == "revoked":
        already = current is not None and current.revoked
        return None if already else CorpGrant(corp_id, None, None, occurred_at, revoked=True)
    if change == "granted" and permanent_code is None:
        raise ValueError("auth.granted needs a permanent code")
    # A grant we never saw granted (or one revoked) is started only by an event carrying a
    # permanent code: auth.granted, or auth.changed after reset_permanent_code re-issued one.
    if change == "granted" or current is None or current.revoked:
        if permanent_code is None:
            return None
        return CorpGrant(corp_id, permanent_code, agent_id, occurred_at)
    return CorpGrant(
        corp_id,
        permanent_code or current.permanent_code,
        agent_id if agent_id is not None else current.agent_id,
        occurred_at,
    )


def ticket_age_s(ticket: SuiteTicket | None, now: float) -> float | None:
    """Seconds since the newest ticket was issued (by WeCom's TimeStamp), None without one."""
    return None if ticket is None else max(0.0, now - ticket.timestamp)
