"""The simulator's state file: every kind of state round-trips, writes are atomic and private,
and a corrupt, foreign or future file is set aside with a warning instead of crashing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from simulator import persistence
from simulator.installs import Installs
from simulator.media import Media
from simulator.messages import SendLimits, SentMessage
from simulator.persistence import (
    FORMAT_VERSION,
    StateFileError,
    StatePersistence,
    decode,
    encode,
    restore,
    snapshot,
    write_atomically,
)
from simulator.state import Credentials, Lifetimes, SimulatorState, WeComError
from tests.support.simulator import SimClock

CREDENTIALS = Credentials("wwsuite", "suite-secret", "wwprovider", "provider-secret")
NOW = 1_700_000_000.0


def make_state(clock: SimClock, seed: int | None = 7) -> SimulatorState:
    return SimulatorState(
        CREDENTIALS,
        Lifetimes(),
        clock=clock,
        seed=seed,
        send_limits=SendLimits(per_app_day=1000),
    )


def send(state: SimulatorState, corp_id: str, text: str) -> SentMessage:
    """One message/send to every installed member, recorded as the API does it."""
    corp = state.installs.corps[corp_id]
    body: dict[str, Any] = {"touser": "@all", "msgtype": "text", "text": {"content": text}}
    body["enable_duplicate_check"] = 1
    users = [member.user_id for member in corp.installed_members]
    message = SentMessage(
        state.new_msgid(),
        corp_id,
        corp.agent_id,
        state.clock(),
        body,
        dict(state.outbox.deliver(corp, body, users)),
        [],
        [],
        response_code=state.new_msgid(),
    )
    state.outbox.record(message)
    return message


def populated(clock: SimClock) -> tuple[SimulatorState, dict[str, str]]:
    """A state holding one of everything the file keeps; the values a test checks later."""
    state = make_state(clock)
    ticket = state.issue_suite_ticket()
    suite_token = state.get_suite_token("wwsuite", "suite-secret", ticket).value
    provider_token = state.get_provider_token("wwprovider", "provider-secret").value
    pre_auth = state.issue_pre_auth_code().value
    state.set_session_info(pre_auth, 1)
    installs: Installs = state.installs
    used_code = installs.install("wwcorp1", "alice", test=False, state="s1")
    corp, _ = installs.exchange_auth_code(used_code)
    installs.add_member("wwcorp1", "bob", test=False)
    installs.set_admins("wwcorp1", [("carol", 0), ("alice", 1)])
    corp_token = installs.issue_corp_token(corp).value
    fresh_code = installs.install("wwcorp2", "dave", test=True, state=None)
    oauth_code = state.oauth.issue_code("wwcorp1", "alice", "snsapi_base")
    _, user_ticket = state.oauth.use_code(
        state.oauth.issue_code("wwcorp1", "bob", "snsapi_privateinfo")
    )
    assert user_ticket is not None
    state.media.add(Media("media1", "wwcorp1", "image", "a.png", 100, int(NOW)))
    sent = send(state, "wwcorp1", "hello")
    values = {
        "ticket": ticket,
        "suite_token": suite_token,
        "provider_token": provider_token,
        "pre_auth": pre_auth,
        "used_code": used_code,
        "fresh_code": fresh_code,
        "permanent_code": str(corp.permanent_code),
        "corp_token": corp_token,
        "oauth_code": oauth_code,
        "user_ticket": user_ticket.value,
        "msgid": sent.msgid,
        "response_code": str(sent.response_code),
    }
    return state, values


def reloaded(state: SimulatorState, clock: SimClock) -> SimulatorState:
    """A fresh state (as after a restart) restored from ``state``'s file bytes."""
    again = make_state(clock)
    restore(again, decode(encode(snapshot(state, now=NOW))))
    return again


def test_every_kind_of_state_survives_a_round_trip() -> None:
    """The file holds tickets, tokens, codes, corps, members, admins, OAuth, media and sends:
    the reloaded state snapshots exactly like the original."""
    clock = SimClock(NOW)
    state, _ = populated(clock)
    again = reloaded(state, clock)
    assert snapshot(again, now=NOW) == snapshot(state, now=NOW)
    assert again.installs.corps["wwcorp1"].admins == [("carol", 0), ("alice", 1)]
    assert again.outbox.sent[0].body["text"] == {"content": "hello"}


def test_after_a_reload_issued_values_work_and_used_ones_stay_used() -> None:
    """Tokens and codes are valid until the same expiry; a code used before stays used."""
    clock = SimClock(NOW)
    state, values = populated(clock)
    again = reloaded(state, clock)
    again.check_suite_token(values["suite_token"])
    assert again.provider_tokens[values["provider_token"]].expires_at == NOW + 7200
    corp = again.installs.authorised_corp("wwcorp1", values["permanent_code"])
    assert again.installs.check_corp_token(values["corp_token"]) is corp
    assert again.take_pre_auth_code(values["pre_auth"]) == 1
    with pytest.raises(WeComError) as used:
        again.installs.exchange_auth_code(values["used_code"])
    assert used.value.errcode == 40029
    assert again.installs.exchange_auth_code(values["fresh_code"])[0].corp_id == "wwcorp2"
    assert again.oauth.use_code(values["oauth_code"])[0].user_id == "alice"
    assert again.oauth.use_ticket(values["user_ticket"]).user_id == "bob"
    assert again.media.is_valid("wwcorp1", "media1")
    assert again.outbox.use_response_code(values["response_code"]).msgid == values["msgid"]
    clock.advance(7200)
    with pytest.raises(WeComError) as expired:
        again.installs.check_corp_token(values["corp_token"])
    assert expired.value.errcode == 42001


def test_the_send_history_survives_so_duplicates_are_still_caught() -> None:
    """The duplicate check (and the limits' history) goes on across a reload."""
    clock = SimClock(NOW)
    state, _ = populated(clock)
    again = reloaded(state, clock)
    clock.advance(10)
    assert send(again, "wwcorp1", "hello").outcomes == {"alice": "duplicate", "bob": "duplicate"}
    assert send(again, "wwcorp1", "other").outcomes == {"alice": "delivered", "bob": "delivered"}
    app = ("wwcorp1", again.installs.corps["wwcorp1"].agent_id)
    assert again.outbox._day_used[app][1] == 6


def test_a_seeded_simulator_goes_on_drawing_new_values_after_a_reload() -> None:
    """With SIM_SEED the generator continues where it stopped: no value is issued twice."""
    clock = SimClock(NOW)
    state, _ = populated(clock)
    again = reloaded(state, clock)
    assert again.new_msgid() == state.new_msgid()
    assert again.new_msgid() != make_state(clock).new_msgid()


def test_a_state_of_another_suite_is_refused() -> None:
    """A file written for a different suite_id is not restored."""
    clock = SimClock(NOW)
    state, _ = populated(clock)
    other = SimulatorState(Credentials("wwother", "x"), clock=clock)
    with pytest.raises(StateFileError, match="belongs to suite 'wwsuite'"):
        restore(other, decode(encode(snapshot(state))))
    assert other.installs.corps == {}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "not a simulator state file"),
        (b"[]", "not a simulator state file"),
        (b'{"version": 99, "anything": 1}', "format version 99 is not 1"),
        (b'{"version": 1, "saved_at": "x", "suite_id": "wwsuite"}', "invalid fields (saved_at)"),
    ],
)
def test_decode_says_why_a_file_is_unusable(content: bytes, reason: str) -> None:
    """Bad JSON, no version, a future version and bad fields each get a reason."""
    with pytest.raises(StateFileError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode(content)


def test_a_corrupt_file_is_set_aside_with_a_warning_and_the_state_starts_empty(
    tmp_path: Path,
) -> None:
    """load() never raises: the file moves to <name>.unreadable and the state stays empty."""
    path = tmp_path / "simulator-state.json"
    path.write_bytes(b'{"version": 2, "note": "not-logged"}')
    state = make_state(SimClock(NOW))
    with capture_logs() as logs:
        loaded = StatePersistence(state, path).load()
    assert loaded is False
    assert not path.exists()
    assert (tmp_path / "simulator-state.json.unreadable").read_bytes().startswith(b'{"version": 2')
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["event"] == "simulator_state_unreadable"
    assert "format version 2" in warning["reason"]
    assert "not-logged" not in json.dumps(logs, default=str)
    assert state.installs.corps == {}


def test_a_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    """No file yet: nothing restored, nothing set aside, no warning."""
    with capture_logs() as logs:
        loaded = StatePersistence(make_state(SimClock(NOW)), tmp_path / "state.json").load()
    assert loaded is False
    assert [entry["event"] for entry in logs] == ["simulator_state_new"]


def test_write_is_atomic_and_private(tmp_path: Path) -> None:
    """The file is 0600, replaced whole, and no temporary file is left behind."""
    path = tmp_path / "sub" / "state.json"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename fails the previous file is untouched and the temporary one removed."""
    path = tmp_path / "state.json"
    write_atomically(path, b"old")

    def refuse(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


async def test_a_burst_of_changes_is_one_write_and_close_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand changes before the save are one write; close() saves only what changed."""
    path = tmp_path / "state.json"
    writes: list[bytes] = []
    real_write = persistence.write_atomically

    def counting(target: Path, data: bytes) -> None:
        writes.append(data)
        real_write(target, data)

    monkeypatch.setattr(persistence, "write_atomically", counting)
    clock = SimClock(NOW)
    state = make_state(clock)
    saver = StatePersistence(state, path, interval_s=3600)
    for index in range(1000):
        state.installs.install("wwcorp1", f"user{index % 50}", test=False, state=None)
        saver.mark_changed()
    await saver.close()
    await saver.close()  # nothing changed since: no second write
    assert len(writes) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = make_state(clock)
    assert StatePersistence(again, path).load() is True
    assert len(again.installs.corps["wwcorp1"].installed_members) == 50


async def test_a_failing_disk_is_one_warning_and_the_save_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save() answers False and warns once while the disk refuses; it retries on the next."""
    path = tmp_path / "state.json"
    saver = StatePersistence(make_state(SimClock(NOW)), path)
    saver.mark_changed()
    monkeypatch.setattr(os, "fsync", _refuse)
    with capture_logs() as logs:
        assert await saver.save() is False
        assert await saver.save() is False
    assert [entry["event"] for entry in logs] == ["simulator_state_not_saved"]
    monkeypatch.undo()
    await saver.close()
    assert decode(path.read_bytes()).version == FORMAT_VERSION


def _refuse(*_: object) -> None:
    raise OSError("read-only file system")


def test_the_format_is_version_1_json(tmp_path: Path) -> None:
    """A pinned file of format version 1 still loads: the format does not drift silently."""
    document = {
        "version": 1,
        "saved_at": NOW,
        "suite_id": "wwsuite",
        "corps": [
            {
                "corp_id": "wwcorp1",
                "agent_id": 1000002,
                "members": {
                    "alice": {
                        "user_id": "alice",
                        "open_userid": "woalice",
                        "installed": True,
                        "test": False,
                    }
                },
                "permanent_code": "pc-1",
                "state": None,
                "installer": "alice",
                "admins": None,
            }
        ],
        "corp_tokens": [["wwcorp1", {"value": "tok-1", "expires_at": NOW + 60}]],
    }
    path = tmp_path / "state.json"
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)
    state = make_state(SimClock(NOW))
    assert StatePersistence(state, path).load() is True
    assert state.installs.check_corp_token("tok-1").corp_id == "wwcorp1"
    assert state.installs.authorised_corp("wwcorp1", "pc-1").installed_members[0].user_id == "alice"
