"""The simulator's pure domain: credentials and their expiry, faults, resets, callback XML."""

from __future__ import annotations

import pytest

from shared.wecom.xml import parse_xml
from simulator.pusher import Route, judge_answer, suite_ticket_xml
from simulator.state import Credentials, Fault, Lifetimes, SimulatorState, WeComError
from tests.support.simulator import SimClock

CREDENTIALS = Credentials("wwsuite", "suite-secret", "wwprovider", "provider-secret")


def make_state(clock: SimClock | None = None, seed: int | None = None) -> SimulatorState:
    return SimulatorState(CREDENTIALS, Lifetimes(), clock=clock or SimClock(), seed=seed)


def test_suite_token_needs_the_latest_unexpired_ticket() -> None:
    """Only the latest ticket mints a token, and only within its 1800 s."""
    clock = SimClock()
    state = make_state(clock)
    old = state.issue_suite_ticket()
    latest = state.issue_suite_ticket()
    with pytest.raises(WeComError) as superseded:
        state.get_suite_token("wwsuite", "suite-secret", old)
    token = state.get_suite_token("wwsuite", "suite-secret", latest)
    clock.advance(1800)
    with pytest.raises(WeComError) as expired:
        state.get_suite_token("wwsuite", "suite-secret", latest)
    assert superseded.value.errcode == 40085
    assert expired.value.errcode == 40085
    assert token.expires_at == 1_700_000_000 + 7200


@pytest.mark.parametrize(
    ("suite_id", "secret", "errcode"),
    [("wwother", "suite-secret", 40083), ("wwsuite", "bad", 40080), (None, None, 40083)],
)
def test_suite_credentials_are_checked_before_the_ticket(
    suite_id: object, secret: object, errcode: int
) -> None:
    """suite_id is checked first (40083), then the secret (40080)."""
    state = make_state()
    with pytest.raises(WeComError) as refused:
        state.get_suite_token(suite_id, secret, "no-ticket")
    assert refused.value.errcode == errcode


def test_suite_token_check_tells_unknown_from_expired() -> None:
    """An unknown token is 40082; the same token past its TTL is 42009."""
    clock = SimClock()
    state = make_state(clock)
    token = state.get_suite_token("wwsuite", "suite-secret", state.issue_suite_ticket()).value
    state.check_suite_token(token)
    with pytest.raises(WeComError) as unknown:
        state.check_suite_token("unknown")
    clock.advance(7200)
    with pytest.raises(WeComError) as expired:
        state.check_suite_token(token)
    assert (unknown.value.errcode, expired.value.errcode) == (40082, 42009)


def test_provider_token_without_a_configured_secret_is_always_refused() -> None:
    """With no provider secret configured nothing matches it: 40001."""
    state = SimulatorState(Credentials("wwsuite", "s", "wwprovider", None), clock=SimClock())
    with pytest.raises(WeComError) as refused:
        state.get_provider_token("wwprovider", "")
    assert refused.value.errcode == 40001


def test_fault_is_used_up_after_its_times() -> None:
    """A fault for two calls matches its path twice, other paths never."""
    state = make_state()
    state.add_fault(Fault("/cgi-bin/a", errcode=-1, times=2))
    assert state.take_fault("/cgi-bin/b") is None
    assert state.take_fault("/cgi-bin/a") is not None
    assert state.take_fault("/cgi-bin/a") is not None
    assert state.take_fault("/cgi-bin/a") is None


def test_fault_without_times_stays_until_cleared() -> None:
    """times=None keeps a fault armed until clear_faults."""
    state = make_state()
    state.add_fault(Fault("/cgi-bin/a", errcode=-1, times=None))
    assert all(state.take_fault("/cgi-bin/a") is not None for _ in range(5))
    assert state.clear_faults() == 1
    assert state.take_fault("/cgi-bin/a") is None


def test_seed_makes_issued_values_reproducible() -> None:
    """Two states with one seed issue the same tickets; reset restarts the sequence."""
    first, second = make_state(seed=7), make_state(seed=7)
    tickets = [first.issue_suite_ticket() for _ in range(2)]
    assert tickets == [second.issue_suite_ticket() for _ in range(2)]
    first.reset()
    assert first.issue_suite_ticket() == tickets[0]
    assert len(tickets[0]) == 64


def test_reset_forgets_everything() -> None:
    """reset clears the ticket, tokens, calls and faults."""
    state = make_state()
    state.get_suite_token("wwsuite", "suite-secret", state.issue_suite_ticket())
    state.count_call("/cgi-bin/a")
    state.add_fault(Fault("/cgi-bin/a"))
    state.reset()
    assert state.latest_ticket is None
    assert not state.suite_tokens
    assert not state.calls
    assert not state.faults


def test_suite_ticket_xml_has_the_fields_of_the_protocol_doc() -> None:
    """The plaintext parses with the gateway's XML parser into §5.1's fields."""
    fields = parse_xml(suite_ticket_xml("wwsuite", "ticket-1", 1_700_000_000))
    assert fields["SuiteId"] == "wwsuite"
    assert fields["InfoType"] == "suite_ticket"
    assert fields["TimeStamp"] == "1700000000"
    assert fields["SuiteTicket"] == "ticket-1"


@pytest.mark.parametrize(
    ("route", "status", "body", "ok"),
    [
        ("command", 200, "success", True),
        ("command", 200, "ok", False),
        ("command", 500, "success", False),
        ("data", 200, "", True),
        ("data", 204, "", False),
    ],
)
def test_delivery_success_follows_wecom_rules(
    route: Route, status: int, body: str, *, ok: bool
) -> None:
    """Instruction callbacks need 200 + `success`; data callbacks need 200."""
    assert judge_answer(route, status, body)[0] is ok
