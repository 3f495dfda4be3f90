"""Pure member sign-in and JS-SDK logic: signed state and session tokens, ``next``
validation, the URL a JS-SDK signature covers, and the signature (protocol doc §9, §10).

No I/O here; the handlers in ``gateway/web/oauth.py`` and ``gateway/web/jssdk.py`` call it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import SplitResult, unquote, urlsplit

from shared.errors import Forbidden, InvalidRequest, Unauthorized

SESSION_KEY_PURPOSE: Final = b"wecom-suite/session-v1"
SESSION_ID_BYTES: Final = 18  # 24 URL-safe characters
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{24}")
STATE_KEY_PURPOSE: Final = b"wecom-suite/oauth-state-v1"
STATE_TTL_S: Final = 600
MAX_TOKEN_CHARS: Final = 4096
MAX_URL_CHARS: Final = 2048
# WeCom's state: [a-zA-Z0-9], at most 128 bytes (§9.1). Ours: nonce, expiry, MAC.
_STATE_PARAM = re.compile(r"\A([0-9a-f]{32})([0-9]{10})([0-9a-f]{32})\Z")
# Control characters, space and backslash: browsers treat "\" like "/" in URLs.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_NONCE_ALPHABET: Final = string.ascii_letters + string.digits


class InvalidToken(InvalidRequest):
    """A signed token (state cookie, session cookie) is malformed, altered or expired."""

    code = "invalid_token"
    reason = "the token is malformed, altered or expired"

    def __init__(self, why: str) -> None:
        super().__init__(f"the token is {why}")
        self.why = why  # "malformed" | "altered" | "expired"


class InvalidNext(InvalidRequest):
    code = "invalid_next"
    reason = "next must be a path on this site or a URL on an allowed origin"


class InvalidState(InvalidRequest):
    """The OAuth ``state`` does not match the sign-in this browser started."""

    code = "invalid_state"
    reason = "the sign-in state is missing, altered, expired or from another browser"

    def __init__(self, why: str) -> None:
        super().__init__(f"{self.reason} ({why})")
        self.why = why


class NotSignedIn(Unauthorized):
    code = "not_signed_in"
    reason = "sign in first: no valid session"


class NotAMember(Forbidden):
    code = "not_a_member"
    reason = "WeCom did not name a member of an enterprise"


class UntrustedUrl(InvalidRequest):
    code = "untrusted_url"
    reason = "url must be an http(s) URL on the app's trusted domain"


def derive_key(data_key: bytes, purpose: bytes) -> bytes:
    """A key for one purpose, so a token signed for one use is worthless for another."""
    return hmac.new(data_key, purpose, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SignedCodec:
    """``base64url(JSON) "." base64url(HMAC-SHA256)``; every payload carries ``exp``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def encode(self, payload: Mapping[str, object]) -> str:
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        body = _b64(raw.encode("utf-8"))
        return f"{body}.{self._mac(body)}"

    def decode(self, token: str, *, now: float) -> dict[str, Any]:
        """The payload of a token this codec signed and that has not expired.

        Raises:
            InvalidToken: malformed, altered (MAC mismatch) or expired.
        """
        if len(token) > MAX_TOKEN_CHARS or not token.isascii() or token.count(".") != 1:
            raise InvalidToken("malformed")
        body, mac = token.split(".")
        if not hmac.compare_digest(mac.encode("ascii"), self._mac(body).encode("ascii")):
            raise InvalidToken("altered")
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            raise InvalidToken("malformed") from None
        if not isinstance(payload, dict):
            raise InvalidToken("malformed")
        exp = payload.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise InvalidToken("malformed")
        if exp <= now:
            raise InvalidToken("expired")
        return payload


@dataclass(frozen=True)
class Identity:
    """Who WeCom says signed in (§9.2): tenant-scoped ``(corp_id, user_id)`` plus
    ``open_userid``, stable across the provider's apps."""

    corp_id: str
    user_id: str
    open_userid: str | None


@dataclass(frozen=True)
class Session:
    """The signed-in member, as the session cookie carries it. ``sid`` names this sign-in so
    that it can be ended server-side (sign-out) before ``exp``."""

    corp_id: str
    user_id: str
    open_userid: str | None
    exp: int
    sid: str


class SessionCodec:
    """Issues and reads session cookie values."""

    def __init__(self, data_key: bytes, *, ttl_s: int) -> None:
        self._codec = SignedCodec(derive_key(data_key, SESSION_KEY_PURPOSE))
        self.ttl_s = ttl_s

    def issue(self, identity: Identity, *, now: float) -> tuple[Session, str]:
        session = Session(
            identity.corp_id,
            identity.user_id,
            identity.open_userid,
            int(now) + self.ttl_s,
            secrets.token_urlsafe(SESSION_ID_BYTES),
        )
        payload = {
            "corp_id": session.corp_id,
            "user_id": session.user_id,
            "open_userid": session.open_userid,
            "exp": session.exp,
            "sid": session.sid,
        }
        return session, self._codec.encode(payload)

    def read(self, value: str | None, *, now: float) -> Session:
        """The session of a cookie value.

        Raises:
            NotSignedIn: no cookie, or one that is malformed, altered or expired.
        """
        if not value:
            raise NotSignedIn
        try:
            payload = self._codec.decode(value, now=now)
        except InvalidToken as exc:
            raise NotSignedIn(f"sign in first: the session is {exc.why}") from None
        corp_id, user_id = payload.get("corp_id"), payload.get("user_id")
        open_userid = payload.get("open_userid")
        if not (isinstance(corp_id, str) and corp_id and isinstance(user_id, str) and user_id):
            raise NotSignedIn("sign in first: the session is malformed")
        if open_userid is not None and not isinstance(open_userid, str):
            raise NotSignedIn("sign in first: the session is malformed")
        # A cookie without an id (issued before sessions could end) cannot be signed out of.
        sid = payload.get("sid")
        if not (isinstance(sid, str) and _SESSION_ID.fullmatch(sid)):
            raise NotSignedIn("sign in first: the session is malformed")
        return Session(corp_id, user_id, open_userid, int(payload["exp"]), sid)


@dataclass(frozen=True)
class LoginState:
    """One sign-in in flight: where to go afterwards, its nonce and its expiry."""

    next: str
    nonce: str
    exp: int


class StateCodec:
    """The OAuth ``state`` parameter and the nonce cookie that binds it to the browser.

    WeCom's ``state`` allows only ``[a-zA-Z0-9]`` up to 128 bytes (§9.1), too little for an
    arbitrary ``next``. So the signed JSON ``{next, nonce, exp}`` travels in a short-lived
    cookie, and ``state`` = nonce + expiry + a MAC over nonce, expiry and ``next``: the
    callback needs both, from the same browser, unaltered and in time (no login CSRF).
    """

    def __init__(self, data_key: bytes, *, ttl_s: int = STATE_TTL_S) -> None:
        self._key = derive_key(data_key, STATE_KEY_PURPOSE)
        self._codec = SignedCodec(self._key)
        self.ttl_s = ttl_s

    def _param_mac(self, nonce: str, exp: int, next_url: str) -> str:
        message = f"param|{nonce}|{exp}|{next_url}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def begin(self, next_url: str, *, now: float) -> tuple[LoginState, str, str]:
        """A new sign-in: its state, the ``state`` parameter and the cookie value."""
        state = LoginState(next_url, secrets.token_hex(16), int(now) + self.ttl_s)
        param = f"{state.nonce}{state.exp:010d}{self._param_mac(state.nonce, state.exp, next_url)}"
        cookie = self._codec.encode({"next": next_url, "nonce": state.nonce, "exp": state.exp})
        return state, param, cookie

    def verify(self, param: str | None, cookie: str | None, *, now: float) -> LoginState:
        """The sign-in that ``param`` and ``cookie`` together prove.

        Raises:
            InvalidState: either is missing, malformed, altered or expired, or they do not
                belong together.
        """
        match = _STATE_PARAM.match(param or "")
        if match is None:
            raise InvalidState("malformed state")
        if not cookie:
            raise InvalidState("no sign-in cookie in this browser")
        try:
            payload = self._codec.decode(cookie, now=now)
        except InvalidToken as exc:
            raise InvalidState(f"sign-in cookie {exc.why}") from None
        nonce, exp, next_url = payload.get("nonce"), payload.get("exp"), payload.get("next")
        if not (isinstance(nonce, str) and isinstance(exp, int) and isinstance(next_url, str)):
            raise InvalidState("sign-in cookie malformed")
        param_nonce, param_exp, param_mac = match.groups()
        expected = self._param_mac(nonce, exp, next_url)
        same = hmac.compare_digest(param_nonce, nonce) and int(param_exp) == exp
        if not (same and hmac.compare_digest(param_mac, expected)):
            raise InvalidState("state altered or from another sign-in")
        return LoginState(next_url, nonce, exp)


@dataclass(frozen=True)
class NextPolicy:
    """Where a sign-in may return to: a path on this site, a URL on the trusted domain, or
    one of the allowed origins (``scheme://host[:port]``, lower-case)."""

    trusted_domain: str
    allowed_origins: frozenset[str]


def authority(parts: SplitResult) -> str | None:
    """``host[:port]`` of a URL, lower-case, default port dropped; None if it has none,
    carries user info, or its port is invalid."""
    if "@" in parts.netloc or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def origin_of(url: str) -> str | None:
    """``scheme://authority`` of an absolute http(s) URL, or None."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    found = authority(parts) if scheme in _DEFAULT_PORTS else None
    return None if found is None else f"{scheme}://{found}"


def _decodings(raw: str) -> list[str]:
    """``raw`` and its percent-decodings, until decoding changes nothing (at most 5)."""
    forms = [raw]
    for _ in range(5):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def safe_next(raw: str | None, policy: NextPolicy) -> str:
    """``raw`` if it is a safe place to send the member after sign-in; ``/`` if empty.

    Allowed: a path on this site (``/...``, never ``//`` or a backslash, in any encoding),
    or an absolute http(s) URL whose host is the trusted domain or whose origin is allowed.

    Raises:
        InvalidNext: anything else (other hosts, ``javascript:``, control characters, …).
    """
    if not raw:
        return "/"
    if len(raw) > MAX_URL_CHARS or not raw.isascii():
        raise InvalidNext
    forms = _decodings(raw)
    if any(_UNSAFE.search(form) for form in forms):
        raise InvalidNext
    if raw.startswith("/"):
        if any(form.startswith("//") for form in forms):
            raise InvalidNext
        return raw
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    found = authority(parts) if scheme in _DEFAULT_PORTS else None
    if found is None:
        raise InvalidNext
    if found == policy.trusted_domain or f"{scheme}://{found}" in policy.allowed_origins:
        return raw
    raise InvalidNext


def signing_url(raw: str | None, trusted_domain: str) -> str:
    """The page URL a JS-SDK signature covers: as given, without ``#`` and what follows
    (§10.2), after checking that it is an http(s) URL on the trusted domain.

    Raises:
        InvalidRequest: no url.
        UntrustedUrl: malformed, or not on the trusted domain.
    """
    if not raw:
        raise InvalidRequest("url is required")
    url = raw.split("#", 1)[0]
    if len(url) > MAX_URL_CHARS or not url.isascii() or _UNSAFE.search(url):
        raise UntrustedUrl
    parts = urlsplit(url)
    if parts.scheme.lower() not in _DEFAULT_PORTS or authority(parts) != trusted_domain:
        raise UntrustedUrl
    return url


def js_sdk_signature(ticket: str, nonce_str: str, timestamp: int, url: str) -> str:
    """§10.2: sha1 of ``jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL``, lower-case hex.

    The same algorithm for the corp jsapi_ticket (wx.config) and the agent ticket
    (wx.agentConfig); values go in raw, not URL-escaped.
    """
    string1 = f"jsapi_ticket={ticket}&noncestr={nonce_str}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(string1.encode("utf-8"), usedforsecurity=False).hexdigest()


def new_nonce_str(length: int = 16) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def identity_from_userinfo(answer: Mapping[str, Any]) -> Identity:
    """The member of a ``getuserinfo3rd`` answer; keys are matched case-insensitively
    (§9.2, §15.8: the legacy path answers ``CorpId``/``UserId``).

    Raises:
        NotAMember: no corp and user id (a WeChat user outside any enterprise: ``openid``).
    """
    fields = {str(key).lower(): value for key, value in answer.items()}
    corp_id, user_id = fields.get("corpid"), fields.get("userid")
    open_userid = fields.get("open_userid")
    if not (isinstance(corp_id, str) and corp_id and isinstance(user_id, str) and user_id):
        raise NotAMember
    return Identity(corp_id, user_id, open_userid if isinstance(open_userid, str) else None)
