"""token_service's pure logic: freshness, stale reports, ticket order, grant events."""

from __future__ import annotations

import pytest

from shared.contracts import TokenRequest
from token_service.domain import (
    CachedToken,
    CorpGrant,
    SuiteTicket,
    TokenKey,
    apply_grant_event,
    is_newer_ticket,
    key_for,
    servable,
    ticket_age_s,
    token_from_answer,
)


def token(value: str = "t1", *, fetched: float = 1000.0, lifetime: float = 7200.0) -> CachedToken:
    return CachedToken(value, expires_at=fetched + lifetime, fetched_at=fetched)


def test_a_token_is_served_until_the_margin_before_expiry() -> None:
    """A token is servable up to the margin before its expiry, not at it; no token never is."""
    cached = token()
    assert servable(cached, now=1000.0 + 7200 - 301, margin=300, reject=None)
    assert not servable(cached, now=1000.0 + 7200 - 300, margin=300, reject=None)
    assert not servable(None, now=0, margin=300, reject=None)


def test_the_margin_never_exceeds_a_quarter_of_a_short_lifetime() -> None:
    """A 4 s token keeps 3 s of use: the margin shrinks to a quarter of a short lifetime."""
    # A 4 s token (a test TTL) with the default 300 s margin is still served for 3 s.
    cached = token(lifetime=4.0)
    assert servable(cached, now=1002.9, margin=300, reject=None)
    assert not servable(cached, now=1003.0, margin=300, reject=None)


def test_a_stale_report_only_rejects_the_token_it_names() -> None:
    """A stale report rejects the cached token only if it names that very value."""
    cached = token("current")
    assert not servable(cached, now=1001, margin=300, reject="current")
    assert servable(cached, now=1001, margin=300, reject="older-one")


def test_keys_name_corp_tokens_per_corp_and_ignore_the_agent() -> None:
    """Cache keys are per kind and corp, ignore agent_id, and pre_auth_code has none."""
    assert key_for(TokenRequest(kind="suite")).name == "suite"
    assert key_for(TokenRequest(kind="corp", corp_id="wx1", agent_id=5)).name == "corp:wx1"
    assert key_for(TokenRequest(kind="agent_jsapi", corp_id="wx1")) == TokenKey(
        "agent_jsapi", "wx1"
    )
    with pytest.raises(ValueError, match="pre_auth_code"):
        key_for(TokenRequest(kind="pre_auth_code"))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"kind": "corp"}, "corp_id is required"),
        ({"kind": "suite", "corp_id": "wx1"}, "corp_id is not used"),
        ({"kind": "nonsense"}, "kind"),
        ({"kind": "suite", "extra": 1}, "extra"),
    ],
)
def test_bad_token_requests_are_refused(body: dict[str, object], problem: str) -> None:
    """A token request with a missing or unused corp_id, unknown kind or extra field is invalid."""
    with pytest.raises(ValueError, match=problem):
        TokenRequest.model_validate(body)


def test_tokens_from_answers_need_a_value_and_a_positive_lifetime() -> None:
    """An answer becomes a token only with a non-empty value and a positive integer expires_in."""
    assert token_from_answer("abc", 7200, now=10.0) == CachedToken("abc", 7210.0, 10.0)
    for value, expires_in in (("", 7200), (None, 7200), ("abc", 0), ("abc", "7200"), ("a", True)):
        with pytest.raises(ValueError, match="answer"):
            token_from_answer(value, expires_in, now=10.0)


def test_the_newest_ticket_wins_by_wecom_timestamp() -> None:
    """Tickets are ordered by WeCom's timestamp, then arrival: a late older push never wins."""
    old = SuiteTicket("a", timestamp=100, received_at=500)
    new = SuiteTicket("b", timestamp=200, received_at=400)
    assert is_newer_ticket(old, None)
    assert is_newer_ticket(new, old)
    # A retried older push arriving later never replaces a newer ticket.
    assert not is_newer_ticket(old, new)
    assert not is_newer_ticket(new, new)
    same_second = SuiteTicket("c", timestamp=200, received_at=401)
    assert is_newer_ticket(same_second, new)


def test_ticket_age_counts_from_wecoms_timestamp() -> None:
    """A ticket's age is measured from WeCom's timestamp, not from when we received it."""
    assert ticket_age_s(None, 1000) is None
    assert ticket_age_s(SuiteTicket("a", 400, 990), 1000) == 600


def test_grant_events_apply_in_the_order_they_happened() -> None:
    """Grant, change and revoke apply by occurred_at; an older grant never undoes a revoke."""
    granted = apply_grant_event(None, "granted", corp_id="c", occurred_at=10, permanent_code="p1")
    assert granted == CorpGrant("c", "p1", None, 10)
    changed = apply_grant_event(granted, "changed", corp_id="c", occurred_at=20, agent_id=7)
    assert changed == CorpGrant("c", "p1", 7, 20)
    revoked = apply_grant_event(changed, "revoked", corp_id="c", occurred_at=30)
    assert revoked == CorpGrant("c", None, None, 30, revoked=True)
    # A redelivered grant from before the revocation does not resurrect it.
    assert (
        apply_grant_event(revoked, "granted", corp_id="c", occurred_at=10, permanent_code="p1")
        is None
    )
    # A repeated revocation changes nothing; a re-install afterwards does.
    assert apply_grant_event(revoked, "revoked", corp_id="c", occurred_at=40) is None
    again = apply_grant_event(revoked, "granted", corp_id="c", occurred_at=50, permanent_code="p2")
    assert again == CorpGrant("c", "p2", None, 50)


def test_a_change_without_a_code_cannot_start_a_grant() -> None:
    """A change with no permanent code starts nothing; a grant without one is a ValueError."""
    assert apply_grant_event(None, "changed", corp_id="c", occurred_at=1, agent_id=3) is None
    reset = apply_grant_event(None, "changed", corp_id="c", occurred_at=1, permanent_code="p")
    assert reset == CorpGrant("c", "p", None, 1)
    with pytest.raises(ValueError, match="permanent code"):
        apply_grant_event(None, "granted", corp_id="c", occurred_at=1)


def test_a_revocation_in_the_same_second_as_the_grant_applies() -> None:
    """A revoke stamped in the same whole second as the grant still revokes it."""
    granted = apply_grant_event(None, "granted", corp_id="c", occurred_at=10.6, permanent_code="p")
    revoked = apply_grant_event(granted, "revoked", corp_id="c", occurred_at=10.0)
    assert revoked is not None
    assert revoked.revoked
