"""Sign-in and JS-SDK logic without I/O: signed tokens, state, next, URL and signature."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from gateway.web.oauth_codecs import (
    Identity,
    InvalidNext,
    InvalidState,
    InvalidToken,
    NextPolicy,
    NotAMember,
    NotSignedIn,
    SessionCodec,
    SignedCodec,
    StateCodec,
    UntrustedUrl,
    identity_from_userinfo,
    js_sdk_signature,
    new_nonce_str,
    safe_next,
    signing_url,
)
from shared.errors import InvalidRequest

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NOW = 1_700_000_000.0
POLICY = NextPolicy(
    trusted_domain="app.example.com",
    allowed_origins=frozenset({"https://app.example.com", "http://127.0.0.1:8080"}),
)


def reference_signature(ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """Protocol doc §10.2, written out again independently of the code under test."""
    plain = "jsapi_ticket=" + ticket + "&noncestr=" + noncestr
    plain += "&timestamp=" + str(timestamp) + "&url=" + url
    return hashlib.sha1(plain.encode(), usedforsecurity=False).hexdigest()


# -- signed tokens ---------------------------------------------------------------------------


def test_a_signed_token_round_trips_until_it_expires() -> None:
    """The payload comes back unchanged before exp and is refused from exp on."""
    codec = SignedCodec(KEY)
    token = codec.encode({"exp": int(NOW) + 10, "x": "é"})
    assert codec.decode(token, now=NOW) == {"exp": int(NOW) + 10, "x": "é"}
    with pytest.raises(InvalidToken) as caught:
        codec.decode(token, now=NOW + 10)
    assert caught.value.why == "expired"


def test_a_token_signed_with_another_key_or_altered_is_refused() -> None:
    """Any change to body or MAC, or another key, is detected."""
    token = SignedCodec(KEY).encode({"exp": int(NOW) + 10, "user": "alice"})
    body, mac = token.split(".")
    forged_body = SignedCodec(KEY).encode({"exp": int(NOW) + 10, "user": "admin"}).split(".")[0]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (f"{forged_body}.{mac}", f"{body}.{flipped}", f"{body}x.{mac}"):
        with pytest.raises(InvalidToken) as caught:
            SignedCodec(KEY).decode(bad, now=NOW)
        assert caught.value.why == "altered"
    with pytest.raises(InvalidToken):
        SignedCodec(OTHER_KEY).decode(token, now=NOW)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "é.é", "x" * 5000])
def test_malformed_tokens_are_refused(bad: str) -> None:
    """Empty, undotted, non-ASCII or oversized tokens raise InvalidToken, never decode."""
    with pytest.raises(InvalidToken):
        SignedCodec(KEY).decode(bad, now=NOW)


def test_a_validly_signed_token_without_an_expiry_is_refused() -> None:
    """A correctly signed token whose exp is missing or not a number is still refused."""
    codec = SignedCodec(KEY)
    for payload in ({}, {"exp": "soon"}, {"exp": True}):
        with pytest.raises(InvalidToken):
            codec.decode(codec.encode(payload), now=NOW)


# -- sessions ---------------------------------------------------------------------------------


def test_a_session_cookie_carries_the_identity_and_its_expiry() -> None:
    """A session reads back until its ttl ends; expired, absent, foreign-key cookies fail."""
    codec = SessionCodec(KEY, ttl_s=3600)
    session, value = codec.issue(Identity("wwcorp", "alice", "openalice"), now=NOW)
    assert session.exp == int(NOW) + 3600
    assert codec.read(value, now=NOW + 3599) == session
    with pytest.raises(NotSignedIn):
        codec.read(value, now=NOW + 3600)
    with pytest.raises(NotSignedIn):
        codec.read(None, now=NOW)
    with pytest.raises(NotSignedIn):
        SessionCodec(OTHER_KEY, ttl_s=3600).read(value, now=NOW)


def test_a_state_cookie_is_not_a_session() -> None:
    """Keys are derived per purpose: one signed value cannot stand in for the other."""
    _, _, cookie = StateCodec(KEY).begin("/", now=NOW)
    with pytest.raises(NotSignedIn):
        SessionCodec(KEY, ttl_s=3600).read(cookie, now=NOW)


# -- state ------------------------------------------------------------------------------------


def test_the_state_parameter_fits_wecoms_alphabet_and_verifies_with_its_cookie() -> None:
    """§9.1: state is [a-zA-Z0-9]{0,128}; next travels in the signed cookie."""
    codec = StateCodec(KEY)
    next_url = "/app/page?x=1&y=" + "z" * 500
    state, param, cookie = codec.begin(next_url, now=NOW)
    assert re.fullmatch(r"[a-zA-Z0-9]{1,128}", param)
    assert state.exp == int(NOW) + 600
    assert codec.verify(param, cookie, now=NOW + 599) == state


def test_an_expired_state_is_refused() -> None:
    """A sign-in state verified ten minutes after it began is refused as expired."""
    codec = StateCodec(KEY)
    _, param, cookie = codec.begin("/", now=NOW)
    with pytest.raises(InvalidState):
        codec.verify(param, cookie, now=NOW + 600)


def test_a_state_needs_the_cookie_of_the_same_sign_in() -> None:
    """Login CSRF: a state from another browser's sign-in does not match this cookie."""
    codec = StateCodec(KEY)
    _, param, cookie = codec.begin("/", now=NOW)
    _, other_param, other_cookie = codec.begin("/", now=NOW)
    for bad_param, bad_cookie in ((param, None), (param, other_cookie), (other_param, cookie)):
        with pytest.raises(InvalidState):
            codec.verify(bad_param, bad_cookie, now=NOW)


@pytest.mark.parametrize("position", [0, 31, 32, 41, 42, 73])
def test_any_altered_character_of_the_state_is_refused(position: int) -> None:
    """Changing any one character of the state parameter (nonce, time or MAC) fails the check."""
    codec = StateCodec(KEY)
    _, param, cookie = codec.begin("/", now=NOW)
    swapped = "1" if param[position] != "1" else "2"
    with pytest.raises(InvalidState):
        codec.verify(param[:position] + swapped + param[position + 1 :], cookie, now=NOW)


@pytest.mark.parametrize("bad", [None, "", "abc", "Z" * 74, "a" * 200])
def test_malformed_states_are_refused(bad: str | None) -> None:
    """A missing, empty, short or oversized state parameter is refused against a good cookie."""
    codec = StateCodec(KEY)
    _, _, cookie = codec.begin("/", now=NOW)
    with pytest.raises(InvalidState):
        codec.verify(bad, cookie, now=NOW)


def test_a_cookie_signed_with_another_key_is_refused() -> None:
    """A state and cookie pair issued under another key does not verify under ours."""
    _, param, cookie = StateCodec(OTHER_KEY).begin("/", now=NOW)
    with pytest.raises(InvalidState):
        StateCodec(KEY).verify(param, cookie, now=NOW)


# -- next -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "/"),
        ("", "/"),
        ("/", "/"),
        ("/demo/", "/demo/"),
        ("/a/b?c=d&e=%2F#frag", "/a/b?c=d&e=%2F#frag"),
        ("https://app.example.com/x", "https://app.example.com/x"),
        ("https://APP.example.com:443/x", "https://APP.example.com:443/x"),
        ("http://app.example.com/x", "http://app.example.com/x"),
        ("http://127.0.0.1:8080/demo/", "http://127.0.0.1:8080/demo/"),
    ],
)
def test_safe_next_accepts_local_paths_and_allowed_origins(raw: str | None, expected: str) -> None:
    """Local paths and URLs on an allowed origin pass through unchanged; no next means /."""
    assert safe_next(raw, POLICY) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "https://evil.com/",
        "http://evil.com",
        "https://app.example.com.evil.com/",
        "https://app.example.com:8443/",
        "http://127.0.0.1:9999/",
        "https://app.example.com@evil.com/",
        "https://user:pw@app.example.com/",
        "//evil.com",
        "//evil.com/path",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "\\/evil.com",
        "/\\/evil.com",
        "http:\\\\evil.com",
        "https:evil.com",
        "https:/evil.com",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "evil.com",
        "demo/",
        "?next=x",
        "/%2Fevil.com",
        "/%2F%2Fevil.com",
        "%2F%2Fevil.com",
        "/%5Cevil.com",
        "%5C%5Cevil.com",
        "/%252F%252Fevil.com",
        "/%25252F%25252Fevil.com",
        "https%3A%2F%2Fevil.com",
        "/\t/evil.com",
        "/\n/evil.com",
        " /evil",
        "/%09/evil.com",
        "/%00",
        "/é",
        "ftp://app.example.com/",
        "https://app.example.com:99999/",
        "/" + "a" * 3000,
    ],
)
def test_safe_next_refuses_open_redirects(raw: str) -> None:
    """Foreign hosts, scheme tricks, backslashes and encoded slashes are all refused as next."""
    with pytest.raises(InvalidNext):
        safe_next(raw, POLICY)


# -- JS-SDK -----------------------------------------------------------------------------------


def test_signature_matches_the_official_test_vector_v6() -> None:
    """Protocol doc §3 V6 (path/90506)."""
    ticket = (
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    )
    url = "http://mp.weixin.qq.com?params=value"
    expected = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    assert js_sdk_signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url) == expected
    assert reference_signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url) == expected


def test_signing_url_drops_the_fragment_and_keeps_everything_else() -> None:
    """The JS-SDK signing URL is the page URL without its #fragment, query kept byte for byte."""
    url = "https://app.example.com/page?a=1&b=%E4%B8%AD"
    assert signing_url(url + "#/route?x=1", "app.example.com") == url
    assert signing_url(url, "app.example.com") == url
    assert signing_url("http://127.0.0.1:8080/demo/", "127.0.0.1:8080") == (
        "http://127.0.0.1:8080/demo/"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/page",
        "https://app.example.com:8443/page",
        "https://app.example.com.evil.com/",
        "https://x@app.example.com/",
        "javascript:alert(1)",
        "/relative/page",
        "https://app.example.com/a b",
        "https://app.example.com/\\x",
        "https://app.example.com/é",
    ],
)
def test_signing_url_refuses_urls_off_the_trusted_domain(url: str) -> None:
    """URLs on another host or port, relative, with userinfo or unsafe characters are refused."""
    with pytest.raises(UntrustedUrl):
        signing_url(url, "app.example.com")


def test_signing_url_requires_a_url() -> None:
    """Asking for a signature without a URL is an InvalidRequest."""
    with pytest.raises(InvalidRequest):
        signing_url(None, "app.example.com")


def test_nonce_strings_are_alphanumeric_and_fresh() -> None:
    """Each nonce is 16 alphanumeric characters and fifty in a row are all different."""
    nonces = {new_nonce_str() for _ in range(50)}
    assert len(nonces) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9]{16}", nonce) for nonce in nonces)


# -- getuserinfo3rd ---------------------------------------------------------------------------


def test_userinfo_keys_are_read_case_insensitively() -> None:
    """§9.2, §15.8: the legacy path answers PascalCase keys."""
    lower = {"errcode": 0, "corpid": "wwc", "userid": "u", "open_userid": "o"}
    pascal = {"CorpId": "wwc", "UserId": "u", "open_userid": "o", "DeviceId": ""}
    assert identity_from_userinfo(lower) == Identity("wwc", "u", "o")
    assert identity_from_userinfo(pascal) == Identity("wwc", "u", "o")
    assert identity_from_userinfo({"corpid": "wwc", "userid": "u"}) == Identity("wwc", "u", None)


def test_a_wechat_user_outside_any_enterprise_is_not_a_member() -> None:
    """A userinfo answer with only an openid (no corp member) raises NotAMember."""
    with pytest.raises(NotAMember):
        identity_from_userinfo({"errcode": 0, "openid": "oXYZ"})


def test_the_demo_page_in_docs_is_the_one_served() -> None:
    """docs/demo.html is a link to gateway/web/demo/index.html: one page, never two copies."""
    root = Path(__file__).resolve().parents[2]
    served = (root / "gateway" / "web" / "demo" / "index.html").read_text(encoding="utf-8")
    assert (root / "docs" / "demo.html").read_text(encoding="utf-8") == served
