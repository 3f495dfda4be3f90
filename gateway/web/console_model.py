"""What the developer console shows, computed without I/O: gauge colours, suite_ticket and
token freshness, the console session and the same-origin check of its forms."""

from __future__ import annotations

import hmac
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from gateway.web.oauth_codecs import InvalidToken, SignedCodec, derive_key
from shared.contracts import Installation
from shared.contracts.rpc import TokensStatus

Colour = Literal["green", "amber", "red"]

SESSION_KEY_PURPOSE: Final = b"wecom-suite/console-session-v1"
LINK_KEY_PURPOSE: Final = b"wecom-suite/console-link-v1"
SESSION_TTL_S: Final = 8 * 3600
LINK_TTL_S: Final = 3600
# WeCom pushes a suite_ticket every 10 minutes and each is valid for 30 (seed §3.1): two
# missed pushes is a warning, a ticket older than its validity a fault.
TICKET_VALID_S: Final = 30 * 60
TICKET_AMBER_S: Final = 20 * 60
# token_service refreshes a token ahead of its expiry; one this close to it was not refreshed.
TOKEN_AMBER_S: Final = 10 * 60
# A limit used to this share is worth a look before it is full.
GAUGE_AMBER_SHARE: Final = 0.8
NOTIFY_STATUSES: Final = ("sent", "partial", "failed", "expired")
INSTALL_STATUSES: Final = ("active", "revoked", "refused", "lost")


@dataclass(frozen=True, slots=True)
class Gauge:
    """One install limit: ``used`` of ``limit``, as a share and a colour."""

    name: str
    used: int
    limit: int

    @property
    def percent(self) -> int:
        """The share used, 0–100 (a limit of 0 counts as full)."""
        if self.limit <= 0:
            return 100
        return min(100, round(100 * self.used / self.limit))

    @property
    def colour(self) -> Colour:
        """Green below 80 % of the limit, amber from there, red once it is reached."""
        if self.limit <= 0 or self.used >= self.limit:
            return "red"
        return "amber" if self.used >= GAUGE_AMBER_SHARE * self.limit else "green"


def gauges(quota: Mapping[str, Any]) -> list[Gauge]:
    """The three install limits of an ``rpc.auth`` ``quota`` reply, in the console's order."""
    found = []
    for name in ("corps", "users", "test_accounts"):
        part = quota.get(name)
        if isinstance(part, Mapping):
            found.append(Gauge(name, int(part.get("used") or 0), int(part.get("limit") or 0)))
    return found


def ticket_colour(age_s: float | None) -> Colour:
    """A suite_ticket of ``age_s`` seconds (None: none received): green while fresh, amber
    after two missed pushes, red once past WeCom's 30-minute validity or absent."""
    if age_s is None or age_s >= TICKET_VALID_S:
        return "red"
    return "amber" if age_s >= TICKET_AMBER_S else "green"


def token_colour(remaining_s: float) -> Colour:
    """A cached token with ``remaining_s`` seconds to live: red once expired, amber in its last
    ten minutes, else green."""
    if remaining_s <= 0:
        return "red"
    return "amber" if remaining_s < TOKEN_AMBER_S else "green"


@dataclass(frozen=True, slots=True)
class Freshness:
    """One line of the freshness table: what, for which corp, how old or how long left."""

    what: str
    corp_id: str | None
    seconds: int
    colour: Colour


def freshness(status: TokensStatus, now: datetime) -> tuple[Freshness, list[Freshness]]:
    """The ticket's age and each cached token's remaining life at ``now``."""
    ticket = status.ticket
    age = None if ticket is None else max(0.0, (now - ticket.received_at).total_seconds())
    head = Freshness("suite_ticket", None, -1 if age is None else int(age), ticket_colour(age))
    tokens = []
    for token in status.tokens:
        left = (token.expires_at - now).total_seconds()
        tokens.append(Freshness(token.kind, token.corp_id, int(left), token_colour(left)))
    return head, tokens


def by_status(installations: Iterable[Installation]) -> dict[str, int]:
    """Installations counted by status, every known status present."""
    counts = Counter(installation.status for installation in installations)
    return {status: counts.get(status, 0) for status in INSTALL_STATUSES}


def duration_text(seconds: int) -> str:
    """A short human duration: ``42 s``, ``7 min``, ``3 h 5 min``."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# --- the session ------------------------------------------------------------------------------


class ConsoleSessions:
    """The console's signed session cookie and the sandbox's one-click sign-in link, each
    signed with its own key derived from DATA_KEY (worthless as a member or admin session)."""

    def __init__(self, data_key: bytes, *, ttl_s: int = SESSION_TTL_S) -> None:
        self._sessions = SignedCodec(derive_key(data_key, SESSION_KEY_PURPOSE))
        self._links = SignedCodec(derive_key(data_key, LINK_KEY_PURPOSE))
        self.ttl_s = ttl_s

    def new_session(self, now: float) -> str:
        """A fresh session cookie value, valid for ``ttl_s``."""
        return self._sessions.encode(
            {"sid": secrets.token_urlsafe(16), "exp": int(now) + self.ttl_s}
        )

    def valid_session(self, value: str | None, now: float) -> bool:
        """Whether ``value`` is a session this console signed that has not expired."""
        return _valid(self._sessions, value, now)

    def new_link_token(self, now: float, ttl_s: int = LINK_TTL_S) -> str:
        """A sign-in link token (sandbox mode only): it carries no key and expires. Hex, so
        the log redaction of 43-character key shapes never cuts the banner's link apart."""
        return self._links.encode({"link": True, "exp": int(now) + ttl_s}).encode().hex()

    def valid_link_token(self, value: str | None, now: float) -> bool:
        """Whether ``value`` is an unexpired sign-in link token."""
        if not value or len(value) > 2048:
            return False
        try:
            token = bytes.fromhex(value).decode("ascii")
        except ValueError:
            return False
        return _valid(self._links, token, now)


def _valid(codec: SignedCodec, value: str | None, now: float) -> bool:
    if not value:
        return False
    try:
        codec.decode(value, now=now)
    except InvalidToken:
        return False
    return True


def key_matches(given: str, expected: str) -> bool:
    """The INTERNAL_API_KEY typed into the form, compared in constant time."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def origin_allowed(
    origin: str | None, allowed: Iterable[str], *, fetch_site: str | None = None
) -> bool:
    """Whether a POST comes from this site: its ``Origin`` names one of ``allowed``, or, when
    the browser withheld the origin (``null`` under a no-referrer policy), its
    ``Sec-Fetch-Site`` (which no page can set) says ``same-origin``. Neither: refused."""
    if not origin or origin == "null":
        return fetch_site == "same-origin"
    parts = urlsplit(origin)
    normal = f"{parts.scheme}://{parts.netloc}".lower()
    return normal in {item.lower().rstrip("/") for item in allowed}


def origin_of_url(url: str) -> str | None:
    """The ``scheme://host[:port]`` of an absolute URL, or None."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()
