"""The sandbox's simulator state in ``wecom-suite run``: kept in DATA_DIR by default, and
checked at start against the installations the store calls active."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from shared.bus.abc import RpcTimeout
from shared.contracts import AuthRequest, Installation
from simulator.state import Credentials, SimulatorState
from wecom_suite.allinone import AllInOneSettings, sandbox_simulator_settings
from wecom_suite.sandbox_check import SandboxCoherence, unknown_to_simulator


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIM_STATE_FILE", "DATA_DIR", "WECOM_SUITE_ID"):
        monkeypatch.delenv(name, raising=False)


def state_with(*members: tuple[str, str]) -> SimulatorState:
    state = SimulatorState(Credentials("wwsuite", "secret"))
    for corp_id, user_id in members:
        state.installs.add_member(corp_id, user_id, test=False)
    return state


def active(corp_id: str, *members: str, status: str = "active") -> Installation:
    return Installation.model_validate(
        {"corp_id": corp_id, "members": list(members), "status": status}
    )


def test_the_sandbox_keeps_the_simulator_state_in_data_dir(tmp_path: Path) -> None:
    """Unset SIM_STATE_FILE becomes DATA_DIR/simulator-state.json in `wecom-suite run`."""
    sim = sandbox_simulator_settings(AllInOneSettings(data_dir=tmp_path))
    assert sim.sim_state_file == tmp_path / "simulator-state.json"


def test_an_explicit_state_file_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIM_STATE_FILE wins over the DATA_DIR default."""
    monkeypatch.setenv("SIM_STATE_FILE", str(tmp_path / "elsewhere.json"))
    sim = sandbox_simulator_settings(AllInOneSettings(data_dir=tmp_path / "data"))
    assert sim.sim_state_file == tmp_path / "elsewhere.json"


def test_only_active_installs_the_simulator_lacks_are_reported() -> None:
    """A corp it never saw, or members it has not installed, count; revoked ones do not."""
    state = state_with(("wwknown", "alice"))
    unknown = unknown_to_simulator(
        state,
        [
            active("wwknown", "alice"),
            active("wwknown2", "bob"),
            active("wwgone", "carol", status="revoked"),
        ],
    )
    assert unknown == {"wwknown2": ["bob"]}
    assert unknown_to_simulator(state, [active("wwknown", "alice", "dave")]) == {
        "wwknown": ["dave"]
    }


class _Answers:
    """Stands in for AuthClient.request: one answer, or one error."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def __call__(self, request: AuthRequest) -> Any:
        assert request.op == "installations"
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_an_incoherent_sandbox_is_one_warning_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Active installs unknown to the simulator: one warning naming them and the way out."""
    check = SandboxCoherence(bus=None, state=state_with())  # type: ignore[arg-type]
    answer = {"installations": [active("wwcorp1", "alice").model_dump(mode="json")]}
    monkeypatch.setattr(check._auth, "request", _Answers(answer))
    with capture_logs() as logs:
        await check.check()
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["corps"] == {"wwcorp1": ["alice"]}
    assert "40084" in warning["hint"]
    assert "delete DATA_DIR" in warning["hint"]


async def test_a_coherent_sandbox_or_no_answer_warns_of_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Matching state logs nothing; an RPC timeout is an info line, never a failed start."""
    check = SandboxCoherence(bus=None, state=state_with(("wwcorp1", "alice")))  # type: ignore[arg-type]
    answer = {"installations": [active("wwcorp1", "alice").model_dump(mode="json")]}
    monkeypatch.setattr(check._auth, "request", _Answers(answer))
    with capture_logs() as logs:
        await check.check()
    assert check.unknown == {}
    assert logs == []
    monkeypatch.setattr(check._auth, "request", _Answers(RpcTimeout("no answer")))
    with capture_logs() as logs:
        await check.check()
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("sandbox_check_skipped", "info")
    ]
