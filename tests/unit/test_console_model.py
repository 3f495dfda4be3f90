"""The developer console's pure parts: gauge colours, ticket and token freshness, the
session and sign-in link, the key and origin checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.web.console_model import (
    ConsoleSessions,
    Gauge,
    by_status,
    duration_text,
    freshness,
    gauges,
    key_matches,
    origin_allowed,
    ticket_colour,
    token_colour,
)
from shared.contracts import Installation
from shared.contracts.rpc import CachedTokenStatus, TicketStatus, TokensStatus

KEY = bytes(range(32))


@pytest.mark.parametrize(
    ("used", "limit", "colour", "percent"),
    [
        (0, 10, "green", 0),
        (7, 10, "green", 70),
        (8, 10, "amber", 80),
        (99, 100, "amber", 99),
        (10, 10, "red", 100),
        (12, 10, "red", 100),
        (0, 0, "red", 100),
    ],
)
def test_gauges_turn_amber_at_80_percent_and_red_at_the_limit(
    used: int, limit: int, colour: str, percent: int
) -> None:
    """A limit is green below 80 %, amber from 80 %, red once used up (or zero)."""
    gauge = Gauge("corps", used, limit)
    assert gauge.colour == colour
    assert gauge.percent == percent


def test_gauges_read_the_quota_reply_in_order() -> None:
    """The quota reply's three limits become three gauges: corps, users, test accounts."""
    quota = {
        "policy": "x",
        "corps": {"used": 3, "limit": 10},
        "users": {"used": 100, "limit": 100},
        "test_accounts": {"used": 9, "limit": 10},
    }
    assert [(g.name, g.used, g.limit, g.colour) for g in gauges(quota)] == [
        ("corps", 3, 10, "green"),
        ("users", 100, 100, "red"),
        ("test_accounts", 9, 10, "amber"),
    ]


@pytest.mark.parametrize(
    ("age", "colour"),
    [
        (None, "red"),
        (0.0, "green"),
        (19 * 60.0, "green"),
        (20 * 60.0, "amber"),
        (29 * 60.0, "amber"),
        (30 * 60.0, "red"),
        (3600.0, "red"),
    ],
)
def test_ticket_freshness_against_the_30_minute_validity(age: float | None, colour: str) -> None:
    """A ticket is green under 20 min, amber to 30 min, red past its validity or when absent."""
    assert ticket_colour(age) == colour


@pytest.mark.parametrize(
    ("left", "colour"), [(7200.0, "green"), (600.0, "green"), (599.0, "amber"), (0.0, "red")]
)
def test_token_freshness(left: float, colour: str) -> None:
    """A token is amber in its last ten minutes and red once expired."""
    assert token_colour(left) == colour


def test_freshness_of_a_status_reply() -> None:
    """The ticket's age and each token's time left are computed from the reply at ``now``."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    status = TokensStatus(
        ticket=TicketStatus(timestamp=now, received_at=now - timedelta(minutes=25)),
        tokens=[
            CachedTokenStatus(
                kind="corp",
                corp_id="wwcorp",
                fetched_at=now - timedelta(hours=1),
                expires_at=now + timedelta(hours=1),
            )
        ],
    )
    ticket, tokens = freshness(status, now)
    assert (ticket.seconds, ticket.colour) == (25 * 60, "amber")
    assert [(t.what, t.corp_id, t.seconds, t.colour) for t in tokens] == [
        ("corp", "wwcorp", 3600, "green")
    ]
    absent, _ = freshness(TokensStatus(), now)
    assert (absent.seconds, absent.colour) == (-1, "red")


def test_installations_by_status_name_every_status() -> None:
    """Counts by status include the statuses no installation has (as 0)."""
    installs = [
        Installation(corp_id="a", status="active"),
        Installation(corp_id="b", status="active"),
        Installation(corp_id="c", status="revoked"),
    ]
    assert by_status(installs) == {"active": 2, "revoked": 1, "refused": 0, "lost": 0}


def test_durations_read_like_a_person_says_them() -> None:
    """Seconds, minutes, then hours and minutes."""
    assert [duration_text(s) for s in (42, 420, 3 * 3600 + 300)] == ["42 s", "7 min", "3 h 5 min"]


def test_sessions_are_signed_and_expire() -> None:
    """A session this console signed holds until its TTL; an altered or foreign one never."""
    sessions = ConsoleSessions(KEY, ttl_s=60)
    value = sessions.new_session(1000.0)
    assert sessions.valid_session(value, 1059.0)
    assert not sessions.valid_session(value, 1061.0)
    assert not sessions.valid_session(value[:-2] + "xx", 1001.0)
    assert not ConsoleSessions(bytes(32)).valid_session(value, 1001.0)
    assert not sessions.valid_session(None, 1001.0)


def test_link_tokens_are_not_sessions_and_carry_no_key() -> None:
    """A sign-in link token is hex, expires, and is not accepted as a session (or vice versa)."""
    sessions = ConsoleSessions(KEY)
    link = sessions.new_link_token(1000.0, ttl_s=60)
    assert all(c in "0123456789abcdef" for c in link)
    assert sessions.valid_link_token(link, 1030.0)
    assert not sessions.valid_link_token(link, 1061.0)
    assert not sessions.valid_session(bytes.fromhex(link).decode(), 1030.0)
    assert not sessions.valid_link_token(sessions.new_session(1000.0), 1030.0)
    assert not sessions.valid_link_token("zz", 1030.0)


def test_the_key_check_and_the_origin_check() -> None:
    """The key must match exactly; a POST's Origin must be one allowed (never absent or null)."""
    assert key_matches("k" * 32, "k" * 32)
    assert not key_matches("k" * 31, "k" * 32)
    assert not key_matches("\udcff", "k")
    allowed = ["http://127.0.0.1:8080", "https://app.example.test"]
    assert origin_allowed("http://127.0.0.1:8080", allowed)
    assert origin_allowed("HTTPS://app.example.test", allowed)
    assert not origin_allowed("https://evil.example", allowed)
    assert not origin_allowed(None, allowed)
    assert not origin_allowed("null", allowed)
    assert origin_allowed("null", allowed, fetch_site="same-origin")
    assert not origin_allowed("null", allowed, fetch_site="cross-site")
    assert not origin_allowed("https://evil.example", allowed, fetch_site="same-origin")


def test_the_banner_link_survives_log_redaction() -> None:
    """The sandbox banner's ``console_url`` is logged whole: no key-shaped run to redact."""
    from gateway.web.console import sandbox_sign_in_url  # noqa: PLC0415 -- the one user
    from shared.logging import SecretRedactor  # noqa: PLC0415

    for now in range(1_000_000, 1_000_050):
        link = sandbox_sign_in_url("http://127.0.0.1:8080", KEY, now=float(now))
        cleaned = SecretRedactor()(None, "info", {"event": "sandbox_mode", "console_url": link})
        assert cleaned["console_url"] == link
