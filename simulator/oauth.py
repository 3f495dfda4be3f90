"""OAuth codes and user tickets of web sign-in (protocol doc §9), on the state's clock.

A code names one member, is single use and valid 5 minutes; an unknown, used or expired code
is 40029. Only the ``snsapi_privateinfo`` scope yields a ``user_ticket`` (valid 7200 s), which
``getuserdetail3rd`` takes: 84014 when expired, 84015 when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.installs import NewValue
from simulator.state_types import Clock, Issued, WeComError

SCOPES = frozenset({"snsapi_base", "snsapi_privateinfo"})
USER_TICKET_TTL_S = 7200


@dataclass(frozen=True, slots=True)
class SignIn:
    """Who a code or ticket stands for."""

    corp_id: str
    user_id: str
    scope: str


@dataclass
class OAuth:
    """Issued OAuth codes and user tickets."""

    clock: Clock
    new_value: NewValue
    code_ttl: float = 300
    codes: dict[str, tuple[SignIn, Issued]] = field(default_factory=dict, init=False)
    tickets: dict[str, tuple[SignIn, Issued]] = field(default_factory=dict, init=False)

    def reset(self) -> None:
        self.codes.clear()
        self.tickets.clear()

    def issue_code(self, corp_id: str, user_id: str, scope: str) -> str:
        """A code for the member, to put on the redirect (§9.1)."""
        issued = Issued(self.new_value(64), self.clock() + self.code_ttl)
        self.codes[issued.value] = (SignIn(corp_id, user_id, scope), issued)
        return issued.value

    def use_code(self, code: object) -> tuple[SignIn, Issued | None]:
        """§9.2: use up a code; who it names and, for snsapi_privateinfo, a user_ticket."""
        entry = self.codes.pop(code, None) if isinstance(code, str) else None
        if entry is None or self.clock() >= entry[1].expires_at:
            raise WeComError(40029, "invalid code")
        sign_in = entry[0]
        if sign_in.scope != "snsapi_privateinfo":
            return sign_in, None
        ticket = Issued(self.new_value(64), self.clock() + USER_TICKET_TTL_S)
        self.tickets[ticket.value] = (sign_in, ticket)
        return sign_in, ticket

    def use_ticket(self, ticket: object) -> SignIn:
        """§9.3: who a user_ticket names; reusable until it expires."""
        entry = self.tickets.get(ticket) if isinstance(ticket, str) else None
        if entry is None:
            raise WeComError(84015, "invalid user_ticket")
        if self.clock() >= entry[1].expires_at:
            raise WeComError(84014, "user_ticket expired")
        return entry[0]
