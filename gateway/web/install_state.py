"""Pure rules of the install routes: the signed install ``state`` and the outcome texts.

WeCom's install link takes a ``state`` of at most 128 letters and digits (protocol doc §8.4)
and hands it back on the install-complete redirect, so the state is made of nothing else:
``i1`` + ``t``/``r`` (test or released) + expiry (10 decimal digits) + nonce (16 hex) + MAC
(32 hex of HMAC-SHA256) + the caller's own ``state`` (up to 64 letters and digits, covered by
the MAC). It proves the install was started here, and when.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

_PREFIX: Final = "i1"
# \Z, not $: "$" also matches before a final newline, which would let "...\n" through.
_PATTERN: Final = re.compile(r"^i1([tr])(\d{10})([0-9a-f]{16})([0-9a-f]{32})([A-Za-z0-9]{0,64})\Z")
APP_STATE_PATTERN: Final = re.compile(r"^[A-Za-z0-9]{0,64}\Z")
STATE_TTL_S: Final = 1200  # as long as the pre_auth_code it travels with (§8.2)
# An authentic state past its expiry still identifies an install started here (a member who
# lingered on WeCom's page): its code is processed, never lost, for this much longer.
STATE_GRACE_S: Final = 86_400


@dataclass(frozen=True, slots=True)
class InstallState:
    test: bool
    expires_at: int
    app_state: str = ""

    def expired(self, now: float) -> bool:
        return now > self.expires_at


class InstallStateCodec:
    """Signs and checks install states with a key derived from DATA_KEY."""

    def __init__(self, data_key: bytes, *, ttl_s: int = STATE_TTL_S) -> None:
        # A key of its own, so a MAC made for one purpose is never valid for another.
        self._key = hmac.new(data_key, b"wecom-suite/install-state-v1", hashlib.sha256).digest()
        self._ttl_s = ttl_s

    def issue(self, *, test: bool, now: float, app_state: str = "") -> str:
        """A fresh state; ``app_state`` (letters and digits, ≤ 64) is the caller's own.

        Raises:
            ValueError: ``app_state`` has other characters or is too long.
        """
        if not APP_STATE_PATTERN.match(app_state):
            raise ValueError("state must be at most 64 letters and digits")
        head = f"{_PREFIX}{'t' if test else 'r'}{int(now) + self._ttl_s:010d}{secrets.token_hex(8)}"
        return head + self._mac(head, app_state) + app_state

    def verify(self, state: str | None, *, now: float, grace_s: float = 0.0) -> InstallState | None:
        """The state's content if it is ours and not expired more than ``grace_s`` ago."""
        if not state:
            return None
        match = _PATTERN.match(state)
        if match is None:
            return None
        head, mac, app_state = (
            state[: len(state) - len(match.group(5)) - 32],
            match.group(4),
            match.group(5),
        )
        if not hmac.compare_digest(mac, self._mac(head, app_state)):
            return None
        expires_at = int(match.group(2))
        if now > expires_at + grace_s:
            return None
        return InstallState(test=match.group(1) == "t", expires_at=expires_at, app_state=app_state)

    def _mac(self, head: str, app_state: str) -> str:
        message = f"{head}\n{app_state}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]


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
    "installs_closed": (
        "应用已下线，暂停新的安装，已安装的企业可以继续使用",
        "the app is offline and takes no new installs; existing installations keep working",
    ),
}
