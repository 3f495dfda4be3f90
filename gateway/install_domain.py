"""Pure rules of the install routes: the signed install ``state`` and the outcome texts.

WeCom's install link takes a ``state`` of at most 128 letters and digits (protocol doc §8.4)
and hands it back on the install-complete redirect, so the state is made of nothing else:
``i1`` + ``t``/``r`` (test or released) + expiry (10 decimal digits) + nonce (16 hex) + MAC
(32 hex of HMAC-SHA256 over the rest). It proves the install was started here, and when.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

_PREFIX: Final = "i1"
_PATTERN: Final = re.compile(r"^i1([tr])(\d{10})([0-9a-f]{16})([0-9a-f]{32})$")
STATE_TTL_S: Final = 1200  # as long as the pre_auth_code it travels with (§8.2)


@dataclass(frozen=True, slots=True)
class InstallState:
    test: bool
    expires_at: int


class InstallStateCodec:
    """Signs and checks install states with a key derived from DATA_KEY."""

    def __init__(self, data_key: bytes, *, ttl_s: int = STATE_TTL_S) -> None:
        # A key of its own, so a MAC made for one purpose is never valid for another.
        self._key = hmac.new(data_key, b"wecom-suite/install-state-v1", hashlib.sha256).digest()
        self._ttl_s = ttl_s

    def issue(self, *, test: bool, now: float) -> str:
        body = f"{_PREFIX}{'t' if test else 'r'}{int(now) + self._ttl_s:010d}{secrets.token_hex(8)}"
        return body + self._mac(body)

    def verify(self, state: str | None, *, now: float) -> InstallState | None:
        """The state's content if it is ours and not expired, else None."""
        if not state:
            return None
        match = _PATTERN.match(state)
        if match is None:
            return None
        body, mac = state[:-32], match.group(4)
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        expires_at = int(match.group(2))
        if now > expires_at:
            return None
        return InstallState(test=match.group(1) == "t", expires_at=expires_at)

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]


# The outcome page's texts, in Chinese and English (the install page is seen by members).
LIMIT_TEXTS: Final = {
    "corps": (
        "已达到可安装企业数上限",
        "the app has reached the number of enterprises it may be installed in",
    ),
    "users": (
        "已达到可安装成员数上限",
        "the app has reached the number of members who may install it",
    ),
    "test_accounts": ("已达到测试账号数上限", "the app has reached its number of test accounts"),
    "test_and_released": (
        "同一账号不能同时安装测试版和正式版",
        "one account cannot have both the test and the released app installed",
    ),
}
