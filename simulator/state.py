"""The simulator's in-memory domain: credentials it issued, calls, faults and deliveries.

Plain Python (no aiohttp): every expiry is measured on an injected clock so tests can move
time forward, and every refusal is a :class:`WeComError` carrying WeCom's own errcode
(protocol doc §12).
"""

from __future__ import annotations

import random
import secrets
import string
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from simulator.installs import Installs
from simulator.limits import InstallLimits
from simulator.media import MediaStore
from simulator.messages import Outbox, SendLimits
from simulator.oauth import OAuth
from simulator.state_types import Clock, Issued, WeComError, same

__all__ = [
    "Clock",
    "Credentials",
    "DeliveryAttempt",
    "Fault",
    "Issued",
    "Lifetimes",
    "SimulatorState",
    "WeComError",
]

_ALPHABET = string.ascii_letters + string.digits


@dataclass(slots=True)
class Fault:
    """An injected failure or delay for the next ``times`` calls of ``path``.

    ``times=None`` keeps the fault armed until ``DELETE /_sim/faults``. ``delay_at`` says
    where a pure delay sits: ``"answer"`` (the call is processed, then its answer is late,
    WeCom's real failure mode) or ``"request"`` (before the call is read). A fault with an
    ``errcode`` or ``http_status`` replaces the call, so it is never processed.
    """

    path: str
    errcode: int | None = None
    times: int | None = 1
    delay_ms: int = 0
    http_status: int | None = None
    delay_at: Literal["answer", "request"] = "answer"

    @property
    def replaces_answer(self) -> bool:
        """Whether the fault answers instead of the call (an errcode or an HTTP status)."""
        return self.errcode is not None or self.http_status is not None


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
    auth_code: float = 600
    oauth_code: float = 300


@dataclass
class SimulatorState:
    """Everything the simulator remembers; :meth:`reset` forgets all of it."""

    credentials: Credentials
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    clock: Clock = time.time
    seed: int | None = None
    limits: InstallLimits = field(default_factory=InstallLimits)
    send_limits: SendLimits = field(default_factory=SendLimits)
    latest_ticket: Issued | None = field(default=None, init=False)
    suite_tokens: dict[str, Issued] = field(default_factory=dict, init=False)
    provider_tokens: dict[str, Issued] = field(default_factory=dict, init=False)
    pre_auth_codes: dict[str, Issued] = field(default_factory=dict, init=False)
    session_auth_types: dict[str, int] = field(default_factory=dict, init=False)
    installs: Installs = field(init=False)
    oauth: OAuth = field(init=False)
    outbox: Outbox = field(init=False)
    media: MediaStore = field(init=False)
    calls: Counter[str] = field(default_factory=Counter, init=False)
    faults: list[Fault] = field(default_factory=list, init=False)
    deliveries: list[DeliveryAttempt] = field(default_factory=list, init=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = self._new_random()
        self.installs = Installs(
            self.clock,
            self._new_value,
            self.limits,
            auth_code_ttl=self.lifetimes.auth_code,
            token_ttl=self.lifetimes.token,
        )
        self.oauth = OAuth(self.clock, self._new_value, code_ttl=self.lifetimes.oauth_code)
        self.outbox = Outbox(self.clock, self.send_limits)
        self.media = MediaStore(self.clock)

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
        self.session_auth_types.clear()
        self.installs.reset()
        self.oauth.reset()
        self.outbox.reset()
        self.media.reset()
        self.calls.clear()
        self.faults.clear()
        self.deliveries.clear()
        self._random = self._new_random()

    def _new_value(self, length: int) -> str:
        return "".join(self._random.choice(_ALPHABET) for _ in range(length))

    def new_msg_id(self) -> int:
        """A 64-bit message id, as WeCom puts in ``MsgId`` (protocol doc §6.1)."""
        return self._random.randrange(1, 2**63)

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
        if not same(suite_id, self.credentials.suite_id):
            raise WeComError(40083, "invalid suite_id")
        if not same(suite_secret, self.credentials.suite_secret):
            raise WeComError(40080, "invalid suite_secret")
        # Only the latest ticket is accepted, as the issue's brief asks ("always use the
        # latest", protocol doc §4), even though WeCom documents 30 minutes of validity.
        latest = self.latest_ticket
        if latest is None or not self._valid(latest) or not same(ticket, latest.value):
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

    def set_session_info(self, pre_auth_code: object, auth_type: int) -> None:
        """Record formal (0) or test (1) authorisation for one install session (§8.3).

        The protocol doc names one code for a bad pre_auth_code, 42007 (expired); an unknown
        code gets it too.
        """
        issued = self.pre_auth_codes.get(pre_auth_code) if isinstance(pre_auth_code, str) else None
        if issued is None or not self._valid(issued):
            raise WeComError(42007, "pre_auth_code expired")
        self.session_auth_types[issued.value] = auth_type

    def take_pre_auth_code(self, pre_auth_code: object) -> int | None:
        """Use up a pre_auth_code on the install page; the auth_type set for it, if any.

        42007 when unknown, used or expired (the one code the protocol doc gives, §8.2).
        """
        issued = (
            self.pre_auth_codes.pop(pre_auth_code, None) if isinstance(pre_auth_code, str) else None
        )
        if issued is None or not self._valid(issued):
            raise WeComError(42007, "pre_auth_code expired")
        return self.session_auth_types.pop(issued.value, None)

    def new_msgid(self) -> str:
        """A ``message/send`` msgid: an opaque string, as WeCom's."""
        return self._new_value(32)

    # -- provider_access_token (protocol doc §8.10) -------------------------------------

    def get_provider_token(self, corpid: object, provider_secret: object) -> Issued:
        """Mint a provider_access_token, or refuse with 40013 or 40001.

        The protocol doc gives no codes for this call; those of the global table (§12) for
        an invalid CorpID and an invalid secret are the closest.
        """
        if not same(corpid, self.credentials.provider_corpid):
            raise WeComError(40013, "invalid corpid")
        if not same(provider_secret, self.credentials.provider_secret):
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
