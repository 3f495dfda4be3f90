"""The install routes' pure parts: the signed install state and the outcome pages."""

from __future__ import annotations

import re

import pytest

from gateway.web.install import outcome_page
from gateway.web.install_state import STATE_TTL_S, InstallStateCodec
from gateway.web.rate_limit import RateLimiter

KEY = bytes(range(32))
NOW = 1_800_000_000.0


def test_a_state_is_letters_and_digits_within_wecoms_limit() -> None:
    """An install state is 1-128 letters and digits and verifies with its test flag."""
    codec = InstallStateCodec(KEY)
    for test in (True, False):
        state = codec.issue(test=test, now=NOW)
        assert re.fullmatch(r"[A-Za-z0-9]{1,128}", state)
        verified = codec.verify(state, now=NOW + 1)
        assert verified is not None
        assert verified.test is test


def test_states_are_unique_and_expire() -> None:
    """Two states issued at once differ, and a state verifies until its ttl, not after."""
    codec = InstallStateCodec(KEY)
    assert codec.issue(test=False, now=NOW) != codec.issue(test=False, now=NOW)
    state = codec.issue(test=True, now=NOW)
    assert codec.verify(state, now=NOW + STATE_TTL_S) is not None
    assert codec.verify(state, now=NOW + STATE_TTL_S + 1) is None


def test_a_tampered_or_foreign_state_is_refused() -> None:
    """A state flipped to test, signed by another key, or altered in any way is refused."""
    codec = InstallStateCodec(KEY)
    state = codec.issue(test=False, now=NOW)
    # Flipping released → test must break the MAC.
    assert codec.verify("i1t" + state[3:], now=NOW) is None
    assert codec.verify(InstallStateCodec(bytes(32)).issue(test=True, now=NOW), now=NOW) is None
    for bad in (None, "", "state001", state + "0", state[:-1], "I" + state[1:], state + "\n"):
        assert codec.verify(bad, now=NOW) is None


@pytest.mark.parametrize(
    ("outcome", "status", "marker", "texts"),
    [
        ({"status": "installed", "corp_name": "Acme"}, 200, "installed", ["安装成功", "Acme"]),
        (
            {"status": "refused", "limit": "corps"},
            403,
            "refused:corps",
            ["已达到可安装企业数上限", "number of enterprises"],
        ),
        ({"status": "expired"}, 410, "expired", ["授权码已失效", "expired"]),
        ({"status": "processing"}, 202, "processing", ["正在处理", 'http-equiv="refresh"']),
        ({"status": "unknown"}, 202, "processing", ["Still processing"]),
    ],
)
def test_outcome_pages_say_what_happened_in_both_languages(
    outcome: dict[str, object], status: int, marker: str, texts: list[str]
) -> None:
    """Each install outcome gets its status and a script-free page in Chinese and English."""
    response = outcome_page(outcome)
    assert response.status == status
    assert response.content_type == "text/html"
    body = response.text or ""
    assert f'data-outcome="{marker}"' in body
    for text in texts:
        assert text in body
    assert "<script" not in body


def test_outcome_pages_escape_what_they_show() -> None:
    """A corp name with markup appears HTML-escaped on the outcome page."""
    body = outcome_page({"status": "installed", "corp_name": "<b>x</b>"}).text or ""
    assert "<b>x</b>" not in body
    assert "&lt;b&gt;x&lt;/b&gt;" in body


def test_the_callers_state_rides_along_under_the_mac() -> None:
    """The caller's app_state travels signed in the state, and only short alphanumerics fit."""
    codec = InstallStateCodec(KEY)
    state = codec.issue(test=False, now=NOW, app_state="order42")
    assert len(state) <= 128
    verified = codec.verify(state, now=NOW)
    assert verified is not None
    assert verified.app_state == "order42"
    assert codec.verify(state[:-1] + "3", now=NOW) is None  # the caller's part is signed too
    with pytest.raises(ValueError, match="letters and digits"):
        codec.issue(test=False, now=NOW, app_state="no spaces")
    with pytest.raises(ValueError, match="letters and digits"):
        codec.issue(test=False, now=NOW, app_state="a" * 65)
    with pytest.raises(ValueError, match="letters and digits"):
        codec.issue(test=False, now=NOW, app_state="order42\n")  # "$" would have let it in


def test_an_authentic_expired_state_is_accepted_within_the_grace() -> None:
    """An expired but authentic state verifies within the grace, flagged as expired."""
    codec = InstallStateCodec(KEY)
    state = codec.issue(test=True, now=NOW)
    late = NOW + STATE_TTL_S + 3600
    assert codec.verify(state, now=late) is None
    verified = codec.verify(state, now=late, grace_s=7200)
    assert verified is not None
    assert verified.expired(late)
    assert verified.test


def test_the_rate_limiter_counts_per_key_within_the_window() -> None:
    """The limiter counts per key in its window, 0 means unlimited, old keys are evicted."""
    limiter = RateLimiter(2, 60.0, max_keys=2)
    assert limiter.allow("a", 0)
    assert limiter.allow("a", 1)
    assert not limiter.allow("a", 2)
    assert limiter.allow("b", 2)
    assert limiter.allow("a", 61)  # the first hit left the window
    assert RateLimiter(0, 60.0).allow("a", 0)
    limiter.allow("c", 62)  # a third key evicts the least recently seen
    assert limiter.allow("b", 63)
