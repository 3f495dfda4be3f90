"""The simulator's install domain: auth codes, permanent codes, corp tokens and limits."""

from __future__ import annotations

import pytest

from simulator.limits import InstallLimits
from simulator.state import Credentials, Lifetimes, SimulatorState, WeComError
from tests.support.simulator import SimClock

CREDENTIALS = Credentials("wwsuite", "suite-secret")


def make_state(
    clock: SimClock | None = None, limits: InstallLimits | None = None
) -> SimulatorState:
    return SimulatorState(
        CREDENTIALS, Lifetimes(), clock=clock or SimClock(), limits=limits or InstallLimits()
    )


def test_auth_code_is_single_use() -> None:
    """The second exchange of an auth code is refused with 40029."""
    installs = make_state().installs
    code = installs.install("wwcorp", "alice", test=False, state=None)
    corp, _ = installs.exchange_auth_code(code)
    with pytest.raises(WeComError) as again:
        installs.exchange_auth_code(code)
    assert corp.permanent_code
    assert again.value.errcode == 40029


def test_auth_code_expires_after_600_seconds() -> None:
    """An auth code exchanged at its 600th second is refused."""
    clock = SimClock()
    installs = make_state(clock).installs
    code = installs.install("wwcorp", "alice", test=False, state=None)
    clock.advance(600)
    with pytest.raises(WeComError) as expired:
        installs.exchange_auth_code(code)
    assert expired.value.errcode == 40029


def test_second_member_gets_the_corps_existing_permanent_code() -> None:
    """One permanent code per corp: a second member's install exchanges to the same one."""
    installs = make_state().installs
    first, _ = installs.exchange_auth_code(installs.install("wwcorp", "a", test=False, state=None))
    code = first.permanent_code
    second, _ = installs.exchange_auth_code(installs.install("wwcorp", "b", test=False, state=None))
    assert second.permanent_code == code
    assert first.agent_id == second.agent_id


def test_reset_code_replaces_the_permanent_code() -> None:
    """Exchanging a reset auth code voids the old permanent code (40084)."""
    installs = make_state().installs
    corp, _ = installs.exchange_auth_code(installs.install("wwcorp", "a", test=False, state=None))
    old = corp.permanent_code
    installs.exchange_auth_code(installs.reset_code("wwcorp"))
    with pytest.raises(WeComError) as void:
        installs.authorised_corp("wwcorp", old)
    assert installs.authorised_corp("wwcorp", corp.permanent_code) is corp
    assert void.value.errcode == 40084


def test_cancelled_grant_voids_permanent_code_and_corp_tokens() -> None:
    """After the last member leaves, the permanent code is 40084 and corp tokens 40014."""
    installs = make_state().installs
    corp, _ = installs.exchange_auth_code(installs.install("wwcorp", "a", test=False, state=None))
    code = corp.permanent_code
    token = installs.issue_corp_token(corp).value
    assert installs.uninstall("wwcorp", None) is True
    with pytest.raises(WeComError) as void:
        installs.authorised_corp("wwcorp", code)
    with pytest.raises(WeComError) as gone:
        installs.check_corp_token(token)
    assert (void.value.errcode, gone.value.errcode) == (40084, 40014)


def test_corp_token_expires_with_42001() -> None:
    """A corp token past its 7200 s answers 42001."""
    clock = SimClock()
    installs = make_state(clock).installs
    corp, _ = installs.exchange_auth_code(installs.install("wwcorp", "a", test=False, state=None))
    token = installs.issue_corp_token(corp).value
    clock.advance(7200)
    with pytest.raises(WeComError) as expired:
        installs.check_corp_token(token)
    assert expired.value.errcode == 42001


def fill(state: SimulatorState, corps: int, users_per_corp: int, *, test: bool = False) -> None:
    for c in range(corps):
        for u in range(users_per_corp):
            state.installs.install(f"wwc{c}", f"u{u}", test=test, state=None)


def test_eleventh_corp_is_refused_but_a_known_corp_may_add_members() -> None:
    """Ten corps fill the corp limit; members of those corps may still install."""
    state = make_state()
    fill(state, 10, 1)
    assert state.installs.refusal("wwc10", "u0", test=False) == "corp_limit"
    assert state.installs.refusal("wwc3", "newcomer", test=False) is None


def test_hundred_and_first_user_is_refused() -> None:
    """A hundred released installs fill the user limit."""
    state = make_state()
    fill(state, 10, 10)
    assert state.installs.refusal("wwc0", "u10", test=False) == "user_limit"


def test_eleventh_test_account_is_refused() -> None:
    """Ten test installs fill the test-account limit; released installs are not affected."""
    state = make_state()
    fill(state, 1, 10, test=True)
    assert state.installs.refusal("wwc0", "u10", test=True) == "test_account_limit"
    assert state.installs.refusal("wwc0", "u10", test=False) is None


def test_one_account_cannot_hold_both_test_and_released() -> None:
    """A member with the test app installed is refused the released one, and vice versa."""
    state = make_state()
    state.installs.install("wwcorp", "tester", test=True, state=None)
    state.installs.install("wwcorp", "user", test=False, state=None)
    assert state.installs.refusal("wwcorp", "tester", test=False) == "test_and_released_exclusive"
    assert state.installs.refusal("wwcorp", "user", test=True) == "test_and_released_exclusive"


@pytest.mark.parametrize(
    "limits",
    [
        InstallLimits(enabled=False),
        InstallLimits(corps=None, users=None, test_accounts=None, exclusive=False),
    ],
)
def test_limits_can_be_switched_off(limits: InstallLimits) -> None:
    """With the limits off (all at once or one by one) nothing is refused."""
    state = make_state(limits=limits)
    fill(state, 11, 10)
    fill(state, 1, 11, test=True)
    assert state.installs.refusal("wwc99", "u0", test=False) is None
    assert state.installs.refusal("wwc99", "u99", test=True) is None
    assert state.installs.refusal("wwc0", "u0", test=True) is None


def test_uninstall_frees_a_place() -> None:
    """Limits count current installs: after an uninstall an eleventh corp may install."""
    state = make_state()
    fill(state, 10, 1)
    state.installs.uninstall("wwc0", None)
    assert state.installs.refusal("wwc10", "u0", test=False) is None


def test_reset_clears_installs() -> None:
    """reset() forgets corps, codes and tokens."""
    state = make_state()
    state.installs.install("wwcorp", "a", test=False, state=None)
    state.reset()
    assert state.installs.corps == {}
    assert state.installs.auth_codes == {}
