"""The simulator's in-memory domain: credentials it issued, calls, faults and deliveries.

Plain Python (no aiohttp): every expiry is measured on an injected clock so tests can move
time forward, and every refusal is a :class:`WeComError` carrying WeCom's own errcode
(protocol doc §12).
"""

from __future__ import annotations

import hmac
import random
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time`` in production)."""

_ALPHABET = string.ascii_letters + string.digits


class WeComError(Exception):
    """A refusal WeCom would answer with ``errcode``/``errmsg`` (HTTP 200)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True, slots=True)
class Issued:
    """A credential the simulator handed out and the moment it stops being valid."""

    value: str
    expires_at: float


@dataclass(slots=True)
class Fault:
    """An injected failure or delay for the next ``times`` calls of ``path``.

    ``times=None`` keeps the fault armed until ``DELETE /_sim/faults``.
    """

    path: str
    errcode: int | None = None
    times: int | None = 1
    delay_ms: int = 0
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST of a callback to a receiver, and how the receiver answered."""

    kind: str
    route: str
    url: str
    attempt: int
    status: int | None
    ok: bool
    latency_ms: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the simulator accepts as the app's and the provider's secrets."""

    suite_id: str
    suite_secret: str
    provider_corpid: str | None = None
    provider_secret: str | None = None


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Validity of each credential kind, in seconds (protocol doc §1.3 defaults)."""

    suite_ticket: float = 1800
    token: float = 7200
    pre_auth_code: float = 1200


def _same(given: object, expected: str | None) -> bool:
    return (
        isinstance(given, str)
        and expected is not None
        and hmac.compare_digest(given.encode(), expected.encode())
    )


@dataclass
class SimulatorState:
    """Everything the simulator remembers; :meth:`reset` forgets all of it."""

    credentials: Credentials
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    clock: Clock = time.time
    seed: int | None = None
    latest_ticket: Issued | None = field(default=None, init=False)
    suite_tokens: dict[str, Issued] = field(default_factory=dict, init=False)
    provider_tokens: dict[str, Issued] = field(default_factory=dict, init=False)
    pre_auth_codes: dict[str, Issued] = field(default_factory=dict, init=False)
    calls: Counter[str] = field(default_factory=Counter, init=False)
    faults: list[Fault] = field(default_factory=list, init=False)
    deliveries: list[DeliveryAttempt] = field(default_factory=list, init=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = self._new_random()

    def _new_random(self) -> random.Random:
        # A seed makes every issued value reproducible (benchmarks, golden tests); without
        # one the values are unguessable, as WeCom's are.
        if self.seed is None:
            return secrets.SystemRandom()
        return random.Random(self.seed)  # noqa: S311 -- deterministic on purpose

    def reset(self) -> None:
        """Forget every credential, call count, fault and delivery."""
        self.latest_ticket = None
        self.suite_tokens.clear()
        self.provider_tokens.clear()
        self.pre_auth_codes.clear()
        self.calls.clear()
        self.faults.clear()
        self.deliveries.clear()
        self._random = self._new_random()

    def _new_value(self, length: int) -> str:
        return "".join(self._random.choice(_ALPHABET) for _ in range(length))

    def _issue(self, ttl: float, length: int = 64) -> Issued:
        return Issued(self._new_value(length), self.clock() + ttl)

    def _valid(self, issued: Issued | None) -> bool:
        return issued is not None and self.clock() < issued.expires_at

    # -- suite_ticket and suite_access_token (protocol doc §5.1, §8.1) -------------------

    def issue_suite_ticket(self) -> str:
        """A fresh suite_ticket; it replaces the previous one."""
        self.latest_ticket = self._issue(self.lifetimes.suite_ticket)
        return self.latest_ticket.value

    def get_suite_token(self, suite_id: object, suite_secret: object, ticket: object) -> Issued:
        """Mint a suite_access_token, or refuse with 40083, 40080 or 40085."""
        if not _same(suite_id, self.credentials.suite_id):
            raise WeComError(40083, "invalid suite_id")
        if not _same(suite_secret, self.credentials.suite_secret):
            raise WeComError(40080, "invalid suite_secret")
        # Only the latest ticket is accepted, as the issue's brief asks ("always use the
        # latest", protocol doc §4), even though WeCom documents 30 minutes of validity.
        latest = self.latest_ticket
        if latest is None or not self._valid(latest) or not _same(ticket, latest.value):
            raise WeComError(40085, "invalid suite_ticket")
        token = self._issue(self.lifetimes.token)
        self.suite_tokens[token.value] = token
        return token

    def check_suite_token(self, token: str) -> None:
        """Refuse an unknown (40082) or expired (42009) suite_access_token."""
        issued = self.suite_tokens.get(token)
        if issued is None:
            raise WeComError(40082, "invalid suite_token")
        if not self._valid(issued):
            raise WeComError(42009, "suite_token expired")

    def issue_pre_auth_code(self) -> Issued:
        """A pre_auth_code for one install attempt (protocol doc §8.2)."""
        code = self._issue(self.lifetimes.pre_auth_code)
        self.pre_auth_codes[code.value] = code
        return code

    # -- provider_access_token (protocol doc §8.10) -------------------------------------

    def get_provider_token(self, corpid: object, provider_secret: object) -> Issued:
        """Mint a provider_access_token, or refuse with 40013 or 40001.

        The protocol doc gives no codes for this call; those of the global table (§12) for
        an invalid CorpID and an invalid secret are the closest.
        """
        if not _same(corpid, self.credentials.provider_corpid):
            raise WeComError(40013, "invalid corpid")
        if not _same(provider_secret, self.credentials.provider_secret):
            raise WeComError(40001, "invalid provider_secret")
        token = self._issue(self.lifetimes.token)
        self.provider_tokens[token.value] = token
        return token

    # -- calls, faults, deliveries --------------------------------------------------------

    def count_call(self, path: str) -> None:
        self.calls[path] += 1

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def clear_faults(self) -> int:
        cleared = len(self.faults)
        self.faults.clear()
        return cleared

    def take_fault(self, path: str) -> Fault | None:
        """The first fault armed for ``path``, used up by one call."""
        for index, fault in enumerate(self.faults):
            if fault.path != path:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[index]
            return fault
        return None

    def record_delivery(self, attempt: DeliveryAttempt) -> None:
        self.deliveries.append(attempt)
