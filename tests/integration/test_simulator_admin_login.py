"""The simulator's admin console click (POST /_sim/admin_login) and service/get_login_info:
a corp's admin gets the business-settings URL with a single-use auth code; others do not."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from shared.sandbox import SANDBOX_PROVIDER_CORPID, SANDBOX_PROVIDER_SECRET
from tests.support.simulator import SimulatorHarness, quiet_settings, serve_simulator

pytestmark = pytest.mark.integration


async def _provider_token(sim: SimulatorHarness) -> str:
    body = {"corpid": SANDBOX_PROVIDER_CORPID, "provider_secret": SANDBOX_PROVIDER_SECRET}
    _, answer = await sim.call("POST", "/cgi-bin/service/get_provider_token", body=body)
    token: str = answer["provider_access_token"]
    return token


async def test_an_admin_gets_a_single_use_login_code_and_others_are_refused() -> None:
    """The installer is the corp's admin: their click answers the business-settings URL with
    an auth_code get_login_info resolves once; a plain member and an unknown corp get 403."""
    settings = quiet_settings(sim_business_settings_url="https://app.example.test/admin")
    async with serve_simulator(settings) as sim:
        await sim.install("wwadm", "ada", via="callback")
        await sim.install("wwadm", "bob", via="callback")
        status, answer = await sim.call(
            "POST", "/_sim/admin_login", body={"corp_id": "wwadm", "user_id": "ada"}
        )
        assert status == 200
        parts = urlsplit(answer["redirect_url"])
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://app.example.test/admin"
        [code] = parse_qs(parts.query)["auth_code"]
        token = await _provider_token(sim)
        _, info = await sim.call(
            "POST", "/cgi-bin/service/get_login_info",
            query={"access_token": token}, body={"auth_code": code},
        )  # fmt: skip
        assert info["errcode"] == 0
        assert (info["usertype"], info["corp_info"], info["user_info"]["userid"]) == (
            2,
            {"corpid": "wwadm"},
            "ada",
        )
        _, again = await sim.call(
            "POST", "/cgi-bin/service/get_login_info",
            query={"access_token": token}, body={"auth_code": code},
        )  # fmt: skip
        assert again["errcode"] == 40029
        _, bad_token = await sim.call(
            "POST", "/cgi-bin/service/get_login_info",
            query={"access_token": "nope"}, body={"auth_code": code},
        )  # fmt: skip
        assert bad_token["errcode"] == 40014
        for body in ({"corp_id": "wwadm", "user_id": "bob"}, {"corp_id": "wwnone", "user_id": "x"}):
            status, _ = await sim.call("POST", "/_sim/admin_login", body=body)
            assert status == 403
        status, _ = await sim.call("POST", "/_sim/admin_login", body={"corp_id": "wwadm"})
        assert status == 400


async def test_the_admins_set_by_the_control_api_are_the_ones_who_may_sign_in() -> None:
    """After POST /_sim/admins names bob, bob's click works and the installer's is refused:
    the admin console and get_admin_list agree on who administers the app."""
    async with serve_simulator(quiet_settings()) as sim:
        await sim.install("wwadm", "ada", via="callback")
        await sim.install("wwadm", "bob", via="callback")
        status, _ = await sim.call(
            "POST", "/_sim/admins", body={"corp_id": "wwadm", "users": ["bob"]}
        )
        assert status == 200
        ada = {"corp_id": "wwadm", "user_id": "ada"}
        bob = {"corp_id": "wwadm", "user_id": "bob"}
        assert (await sim.call("POST", "/_sim/admin_login", body=bob))[0] == 200
        assert (await sim.call("POST", "/_sim/admin_login", body=ada))[0] == 403
