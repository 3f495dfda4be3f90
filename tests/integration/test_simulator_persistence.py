"""A simulator served over HTTP with ``SIM_STATE_FILE``: stopped and served again, it still
knows the installs, accepts the codes and tokens it issued, and lists what was sent."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from simulator.persistence import decode
from tests.support.simulator import SimClock, quiet_settings, serve_simulator

TEXT = {"msgtype": "text", "text": {"content": "hello"}}


async def test_a_restarted_simulator_still_knows_installs_tokens_and_sent_messages(
    tmp_path: Path,
) -> None:
    """Install, exchange, send; stop; serve again on the file: the old corp token sends, the
    permanent code mints a new one, the member may write, and /_sim/sent lists both sends."""
    path = tmp_path / "simulator-state.json"
    settings = quiet_settings(sim_state_file=path)
    clock = SimClock()
    async with serve_simulator(settings, clock=clock) as sim:
        suite = await sim.suite_token()
        code = (await sim.install("wwcorp1", "alice"))["auth_code"]
        exchanged = await sim.service("get_permanent_code", suite, {"auth_code": code})
        token, permanent = exchanged["access_token"], exchanged["permanent_code"]
        body = {"touser": "alice", "agentid": exchanged["auth_info"]["agent"][0]["agentid"], **TEXT}
        first = await sim.corp_call("/cgi-bin/message/send", token, body)
        assert first["errcode"] == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # written on shutdown

    async with serve_simulator(settings, clock=clock) as sim:
        again = await sim.corp_call("/cgi-bin/message/send", token, body)
        assert again["errcode"] == 0
        assert again.get("invaliduser", "") == ""
        minted = await sim.service(
            "get_corp_token", suite, {"auth_corpid": "wwcorp1", "permanent_code": permanent}
        )
        assert minted["access_token"] != token
        reused = await sim.service("get_permanent_code", suite, {"auth_code": code})
        assert reused["errcode"] == 40029  # used before the restart, used still
        status, _ = await sim.call(
            "POST",
            "/_sim/message",
            body={"corp_id": "wwcorp1", "user_id": "alice", "msgtype": "text", "content": "hi"},
        )
        assert status == 200
        status, sent = await sim.call("GET", "/_sim/sent")
        assert status == 200
        assert [item["msgid"] for item in sent["sent"]] == [first["msgid"], again["msgid"]]
        assert all(item["outcomes"] == {"alice": "delivered"} for item in sent["sent"])


async def test_changes_are_saved_while_serving_not_only_at_shutdown(tmp_path: Path) -> None:
    """An install reaches the file within the save interval, with the simulator still up."""
    path = tmp_path / "simulator-state.json"
    async with serve_simulator(quiet_settings(sim_state_file=path)) as sim:
        await sim.install("wwcorp1", "alice")
        async with asyncio.timeout(10):
            while not path.exists():  # noqa: ASYNC110 -- the writer thread has no event to await
                await asyncio.sleep(0.05)
        saved = decode(path.read_bytes())
        assert [corp.corp_id for corp in saved.corps] == ["wwcorp1"]
