"""``POST /_sim/admins`` over real HTTP: whom ``get_admin_list`` answers (protocol doc §8.9)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.simulator import SimulatorHarness, serve_simulator

CORP = "wwcorp1"


async def admin_list(sim: SimulatorHarness, token: str, corp_id: str = CORP) -> Any:
    return await sim.service(
        "get_admin_list",
        token,
        {"auth_corpid": corp_id, "agentid": sim.state.installs.corps[corp_id].agent_id},
    )


async def set_admins(sim: SimulatorHarness, body: Any) -> tuple[int, Any]:
    return await sim.call("POST", "/_sim/admins", body=body)


def open_userid(sim: SimulatorHarness, user_id: str) -> str:
    return sim.state.installs.corps[CORP].members[user_id].open_userid


async def test_the_first_installer_is_the_admin_by_default() -> None:
    """With no admins set, get_admin_list answers the corp's first installer, auth_type 1."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        await sim.install(CORP, "alice")
        await sim.install(CORP, "bob")
        answer = await admin_list(sim, token)
        expected = [{"userid": "alice", "open_userid": open_userid(sim, "alice"), "auth_type": 1}]
    assert answer["errcode"] == 0
    assert answer["admin"] == expected


async def test_configured_admins_are_answered_in_order() -> None:
    """Set admins (a bare userid is auth_type 1) are what get_admin_list answers, in order."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        await sim.install(CORP, "alice")
        users = ["carol", {"user_id": "alice", "auth_type": 0}]
        status, answer = await set_admins(sim, {"corp_id": CORP, "users": users})
        listed = await admin_list(sim, token)
        expected = [
            {"userid": "carol", "open_userid": open_userid(sim, "carol"), "auth_type": 1},
            {"userid": "alice", "open_userid": open_userid(sim, "alice"), "auth_type": 0},
        ]
        carol = sim.state.installs.corps[CORP].members["carol"]
    assert status == 200
    assert answer == {"corp_id": CORP, "admin": expected}
    assert listed["admin"] == expected
    # An admin need not have the app: carol is a member now, without an install.
    assert carol.open_userid.startswith("wo")
    assert not carol.installed


async def test_an_empty_list_means_no_admins() -> None:
    """users [] answers admin [], as WeCom under member authorisation with none configured."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        await sim.install(CORP, "alice")
        status, _ = await set_admins(sim, {"corp_id": CORP, "users": []})
        answer = await admin_list(sim, token)
    assert status == 200
    assert answer["admin"] == []


async def test_admins_reset_to_the_default_when_the_grant_is_cancelled() -> None:
    """After cancel_auth the next install's first installer is the admin again."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        await sim.install(CORP, "alice")
        await set_admins(sim, {"corp_id": CORP, "users": ["bob"]})
        await sim.call("POST", "/_sim/uninstall", body={"corp_id": CORP})
        await sim.install(CORP, "dave")
        answer = await admin_list(sim, token)
    assert [admin["userid"] for admin in answer["admin"]] == ["dave"]


async def test_a_corp_without_the_app_is_404() -> None:
    """Admins of an unknown corp, or one whose grant is gone, are refused like other calls."""
    async with serve_simulator() as sim:
        unknown_status, unknown = await set_admins(sim, {"corp_id": "wwnone", "users": ["a"]})
        await sim.install(CORP, "alice")
        await sim.call("POST", "/_sim/uninstall", body={"corp_id": CORP})
        gone_status, _ = await set_admins(sim, {"corp_id": CORP, "users": ["a"]})
    assert (unknown_status, gone_status) == (404, 404)
    assert unknown["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"corp_id": CORP},
        {"corp_id": CORP, "users": "alice"},
        {"corp_id": CORP, "users": ["bad id!"]},
        {"corp_id": CORP, "users": ["alice", "alice"]},
        {"corp_id": CORP, "users": ["alice", {"user_id": "alice", "auth_type": 0}]},
        {"corp_id": CORP, "users": [{"user_id": "alice", "auth_type": 2}]},
        {"corp_id": CORP, "users": [{"user_id": "alice", "role": "owner"}]},
        {"corp_id": CORP, "users": [f"u{n}" for n in range(101)]},
        {"corp_id": CORP, "users": [], "extra": 1},
    ],
)
async def test_a_malformed_body_is_400(body: Any) -> None:
    """Missing users, bad or repeated ids, an auth_type not 0/1, unknown fields: 400."""
    async with serve_simulator() as sim:
        await sim.install(CORP, "alice")
        status, answer = await set_admins(sim, body)
        admins = sim.state.installs.corps[CORP].admins
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert admins is None
