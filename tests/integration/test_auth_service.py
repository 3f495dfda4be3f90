"""auth_service end to end on a real RabbitMQ: the simulator pushes WeCom's callbacks to a
gateway, auth_service exchanges codes and keeps the ledger, token_service serves tokens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from auth_service.service import AuthService
from shared.contracts import AuthRequest
from tests.support.installs import InstallStack, install_pages, install_stack, wait_idle
from tests.support.qr import decode_qr
from tests.support.tokens import eventually

pytestmark = pytest.mark.integration

V2_EXCHANGE = "/cgi-bin/service/v2/get_permanent_code"
NO_SIM_LIMITS = {"sim_limits": False}


async def test_install_via_callback_grants_tokens(module_amqp_url: str, tmp_path: Path) -> None:
    """A create_auth callback installs the corp, emits a sealed auth.granted, mints a token."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        answer = await stack.install("wwcorpa", "alice", via="callback")
        assert answer["delivered"] is True
        found = await stack.installation("wwcorpa", status="active")
        assert found.members == ["alice"]
        assert found.agent_id is not None
        assert found.test is False
        # token_service got the grant: a corp token is served.
        token = await eventually(lambda: stack.tokens.get("corp", corp_id="wwcorpa"))
        assert token.token
        await eventually(lambda: _has(stack, "auth.granted", 1))
        granted = stack.of_type("auth.granted")[0]
        assert granted.payload["permanent_code_sealed"].startswith("v1:")
        assert granted.payload["installer_user_id"] == "alice"


async def test_one_auth_code_is_exchanged_once_whatever_delivers_it(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """Two redirects and a callback with one auth code make exactly one permanent-code exchange."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        answer = await stack.install("wwcorpb", "bob", via="redirect")
        code = answer["auth_code"]
        redirect = {"auth_code": code, "state": None}
        # The redirect twice (a reload) and a create_auth callback carrying the same code.
        await asyncio.gather(
            stack.publish("install.redirect", redirect),
            stack.publish("install.redirect", redirect),
            stack.publish("command.create_auth", {"auth_code": code}),
        )
        await stack.installation("wwcorpb", status="active")
        await wait_idle(stack)
        assert await stack.calls(V2_EXCHANGE) == 1
        outcome = await stack.auth.request(_outcome(code))
        assert outcome["status"] == "installed"
        assert outcome["corp_id"] == "wwcorpb"


async def test_a_test_install_is_counted_apart(module_amqp_url: str, tmp_path: Path) -> None:
    """A signed test install counts as a test account; an unsigned test claim is released."""
    async with install_stack(module_amqp_url, tmp_path, sim=NO_SIM_LIMITS) as stack:
        answer = await stack.install("wwcorpt", "tess", via="redirect", test=True)
        await stack.publish(
            "install.redirect",
            {"auth_code": answer["auth_code"], "state_valid": True, "test": True},
        )
        found = await stack.installation("wwcorpt", status="active")
        assert found.test is True
        quota = await stack.auth.request(_quota())
        assert quota["test_accounts"] == {"used": 1, "limit": 10}
        assert quota["users"]["used"] == 0  # the release limits count released installs only
        assert quota["policy"] == "lifetime"
        # An unsigned "test" claim (state_valid false) is a released install.
        other = await stack.install("wwcorpu", "ursula", via="redirect")
        await stack.publish(
            "install.redirect",
            {"auth_code": other["auth_code"], "state_valid": False, "test": True},
        )
        assert (await stack.installation("wwcorpu", status="active")).test is False


async def test_the_eleventh_corp_is_refused(module_amqp_url: str, tmp_path: Path) -> None:
    """Of eleven corps one is refused at the 10-corp limit: auth.rejected, and no token."""
    async with install_stack(module_amqp_url, tmp_path, sim=NO_SIM_LIMITS) as stack:
        for index in range(11):
            await stack.install(f"wwlimit{index:02d}", "user", via="callback")
        # Events are consumed concurrently: whichever corp is admitted last is the 11th.
        found = [await stack.installation(f"wwlimit{index:02d}") for index in range(11)]
        refused = [item for item in found if item.status == "refused"]
        assert len(refused) == 1, [item.status for item in found]
        assert "at most 10 enterprises" in (refused[0].reason or "")
        quota = await stack.auth.request(_quota())
        assert quota["corps"] == {"used": 10, "limit": 10}
        await eventually(lambda: _has(stack, "auth.rejected", 1))
        assert stack.of_type("auth.rejected")[0].payload["limit"] == "corps"
        await eventually(lambda: _has(stack, "auth.quota_warning", 2))
        levels = sorted(e.payload["level"] for e in stack.of_type("auth.quota_warning"))
        assert levels == [80, 100]
        # A refused corp gets no token: token_service never heard of it.
        with pytest.raises(Exception, match="not installed"):
            await stack.tokens.get("corp", corp_id=refused[0].corp_id)


async def test_the_101st_user_and_the_11th_test_account_are_refused(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """The 101st user and the 11th test account are refused, one auth.rejected each."""
    async with install_stack(module_amqp_url, tmp_path, sim=NO_SIM_LIMITS) as stack:
        for corp in range(10):
            for user in range(10):
                await _redirect_install(stack, f"wwusers{corp}", f"u{user}")
        await _redirect_install(stack, "wwusers0", "u10")
        await eventually(lambda: _rejected(stack, "users"), timeout=30)
        await eventually(lambda: _used(stack, "users", 100), timeout=30)

    async with install_stack(module_amqp_url, tmp_path / "tests", sim=NO_SIM_LIMITS) as stack:
        for user in range(11):
            await _redirect_install(stack, "wwtestcorp", f"t{user}", test=True)
        await eventually(lambda: _rejected(stack, "test_accounts"), timeout=30)
        await eventually(lambda: _used(stack, "test_accounts", 10), timeout=30)
        # Exactly one of the eleven was refused, whichever was processed last.
        await wait_idle(stack)
        assert len(stack.of_type("auth.rejected")) == 1


async def test_test_and_released_on_one_account_is_refused(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """A member holding the test app is refused the released app on the same account."""
    async with install_stack(module_amqp_url, tmp_path, sim=NO_SIM_LIMITS) as stack:
        await _redirect_install(stack, "wwboth", "carol", test=True)
        await stack.installation("wwboth", status="active")
        await _redirect_install(stack, "wwboth", "carol", test=False)
        await eventually(lambda: _rejected(stack, "test_and_released"), timeout=15)


async def test_concurrent_installs_racing_for_the_last_slots(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """50 installs at once for 3 remaining corp slots admit exactly 3."""
    async with install_stack(
        module_amqp_url, tmp_path, sim=NO_SIM_LIMITS, install_limit_corps=5
    ) as stack:
        for index in range(2):
            await _redirect_install(stack, f"wwrace-pre{index}", "u")
        await stack.installation("wwrace-pre1", status="active")
        answers = [
            await stack.install(f"wwrace{index:02d}", "u", via="redirect") for index in range(50)
        ]
        await asyncio.gather(
            *(stack.publish("install.redirect", {"auth_code": a["auth_code"]}) for a in answers)
        )

        async def all_decided() -> list[str]:
            found = [await stack.auth.installation(f"wwrace{i:02d}") for i in range(50)]
            assert all(item is not None for item in found)
            return [item.status for item in found if item is not None]

        statuses = await eventually(all_decided, timeout=60)
        assert statuses.count("active") == 3
        assert statuses.count("refused") == 47


async def test_cancel_then_a_late_change_does_not_resurrect(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """A change_auth older than the cancel, arriving after it, leaves the corp revoked."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        await stack.install("wwcancel", "dan", via="callback")
        await stack.installation("wwcancel", status="active")
        before_cancel = time.time() - 5
        status, answer = await stack.sim.call(
            "POST", "/_sim/uninstall", body={"corp_id": "wwcancel"}
        )
        assert status == 200
        assert answer["pushed"] == "cancel_auth"
        await stack.installation("wwcancel", status="revoked")
        # A change_auth from before the cancel arrives late.
        await stack.publish(
            "command.change_auth", {"auth_corp_id": "wwcancel"}, occurred_at=before_cancel
        )
        await wait_idle(stack)
        assert (await stack.installation("wwcancel")).status == "revoked"
        with pytest.raises(Exception, match="not installed"):
            await stack.tokens.get("corp", corp_id="wwcancel")


async def test_reset_permanent_code_re_exchanges(module_amqp_url: str, tmp_path: Path) -> None:
    """reset_permanent_code emits auth.changed; the corp token then comes from the new code."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        await stack.install("wwreset", "erin", via="callback")
        await stack.installation("wwreset", status="active")
        first = await eventually(lambda: stack.tokens.get("corp", corp_id="wwreset"))
        status, _ = await stack.sim.call(
            "POST", "/_sim/reset_permanent_code", body={"corp_id": "wwreset"}
        )
        assert status == 200
        await eventually(lambda: _has(stack, "auth.changed", 1), timeout=15)
        changed = stack.of_type("auth.changed")[0]
        assert changed.payload["permanent_code_sealed"]
        # The old code is void at WeCom; the corp token now comes from the new one.
        second = await eventually(lambda: _new_token(stack, "wwreset", first.token))
        assert second != first.token


async def test_a_restart_loses_nothing(module_amqp_url: str, tmp_path: Path) -> None:
    """Restarted services still know the install and token, and exchange no code again."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        await stack.install("wwrestart", "fay", via="callback")
        await stack.installation("wwrestart", status="active")
        token = await eventually(lambda: stack.tokens.get("corp", corp_id="wwrestart"))
        exchanges = await stack.calls(V2_EXCHANGE)
        await stack.stop_services()
        await stack.start_services()
        found = await stack.installation("wwrestart", status="active")
        assert found.members == ["fay"]
        again = await eventually(lambda: stack.tokens.get("corp", corp_id="wwrestart"))
        assert again.token == token.token
        assert await stack.calls(V2_EXCHANGE) == exchanges


async def test_members_are_counted_from_subscribe_events(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """Subscribe adds members up to the cap, one more is refused, unsubscribe removes one."""
    async with install_stack(module_amqp_url, tmp_path, install_limit_users=2) as stack:
        await stack.install("wwsubs", "gus", via="callback")
        await stack.installation("wwsubs", status="active")
        await stack.publish("data.event.subscribe", {"FromUserName": "hal"}, corp_id="wwsubs")
        await eventually(lambda: _members(stack, "wwsubs", ["gus", "hal"]))
        # Over the 2-user cap: the member is refused, not counted.
        await stack.publish("data.event.subscribe", {"FromUserName": "ivy"}, corp_id="wwsubs")
        await eventually(lambda: _rejected(stack, "users"))
        await stack.publish("data.event.unsubscribe", {"FromUserName": "hal"}, corp_id="wwsubs")
        await eventually(lambda: _members(stack, "wwsubs", ["gus"]))


# --- helpers ---------------------------------------------------------------------------------


def _outcome(code: str) -> AuthRequest:
    return AuthRequest(op="install_outcome", auth_code=code, wait_s=2)


def _quota() -> AuthRequest:
    return AuthRequest(op="quota")


async def _redirect_install(
    stack: InstallStack, corp: str, user: str, *, test: bool = False
) -> None:
    answer = await stack.install(corp, user, via="redirect", test=test)
    assert answer["refused"] is None, answer
    await stack.publish(
        "install.redirect",
        {"auth_code": answer["auth_code"], "state_valid": test, "test": test},
    )


async def _has(stack: InstallStack, event_type: str, count: int) -> None:
    assert len(stack.of_type(event_type)) >= count, [e.type for e in stack.events]


async def _rejected(stack: InstallStack, limit: str) -> None:
    limits = [event.payload["limit"] for event in stack.of_type("auth.rejected")]
    assert limit in limits, limits


async def _used(
    stack: InstallStack, limit: str, used: int, *, limit_value: int | None = None
) -> None:
    quota = await stack.auth.request(_quota())
    assert quota[limit]["used"] == used, quota
    assert quota[limit]["limit"] == (used if limit_value is None else limit_value)


async def _members(stack: InstallStack, corp: str, members: list[str]) -> None:
    found = await stack.auth.installation(corp)
    assert found is not None
    assert found.members == members, found.members


async def _new_token(stack: InstallStack, corp: str, old: str) -> str:
    token = await stack.tokens.get("corp", corp_id=corp)
    assert token.token != old
    return token.token


async def test_a_later_member_reported_only_by_subscribe_is_counted(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """§15 q4 played the other way: WeCom tells of a corp's second member only by a data
    callback subscribe event; the ledger still counts them."""
    sim = {"sim_later_members": "subscribe"}
    async with install_stack(module_amqp_url, tmp_path, sim=sim) as stack:
        await stack.install("wwlater", "amy", via="callback")
        await stack.installation("wwlater", status="active")
        answer = await stack.install("wwlater", "ben", via="callback")
        assert answer["pushed"] == "subscribe"
        await eventually(lambda: _members(stack, "wwlater", ["amy", "ben"]))
        await eventually(lambda: _used(stack, "users", 2, limit_value=100))


async def test_a_member_leaving_reported_only_by_unsubscribe_frees_their_seat_when_active(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """§15 q4 the whole way round, end to end from the simulator: under
    SIM_LATER_MEMBERS=subscribe a member leaving is only an unsubscribe event; with the
    `active` counting policy their seat is free again, and the corp stays installed."""
    sim = {"sim_later_members": "subscribe"}
    async with install_stack(
        module_amqp_url, tmp_path, sim=sim, install_counting_policy="active"
    ) as stack:
        await stack.install("wwleave", "amy", via="callback")
        await stack.installation("wwleave", status="active")
        await stack.install("wwleave", "ben", via="callback")
        await eventually(lambda: _used(stack, "users", 2, limit_value=100))
        _, left = await stack.sim.call(
            "POST", "/_sim/uninstall", body={"corp_id": "wwleave", "user_id": "ben"}
        )
        assert (left["pushed"], left["delivered"]) == ("unsubscribe", True)
        await eventually(lambda: _used(stack, "users", 1, limit_value=100))
        await stack.installation("wwleave", status="active")


async def test_ten_test_installs_then_ten_real_customers_are_all_admitted(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """WeCom's life cycle: 10 test accounts install and uninstall again; the 10 real
    customers after them all get the app, under the default lifetime policy."""
    async with install_stack(module_amqp_url, tmp_path, sim=NO_SIM_LIMITS) as stack:
        for index in range(10):
            await _redirect_install(stack, f"wwdev{index}", "dev", test=True)
            await stack.installation(f"wwdev{index}", status="active")
            await stack.sim.call("POST", "/_sim/uninstall", body={"corp_id": f"wwdev{index}"})
            await stack.installation(f"wwdev{index}", status="revoked")
        for index in range(10):
            await stack.install(f"wwreal{index}", "boss", via="callback")
        for index in range(10):
            assert (await stack.installation(f"wwreal{index}", status="active")).test is False
        quota = await stack.auth.request(_quota())
        assert quota["corps"] == {"used": 10, "limit": 10}
        assert quota["test_accounts"]["used"] == 0
        assert stack.of_type("auth.rejected") == []


async def test_a_test_account_by_create_auth_and_a_move_between_the_kinds(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """TEST_ACCOUNTS marks the developer's account arriving by create_auth a test install;
    set_test moves a released installation to test and back within the limits."""
    async with install_stack(
        module_amqp_url, tmp_path, sim=NO_SIM_LIMITS, test_accounts="wwmine:me",
        install_limit_corps=1,
    ) as stack:  # fmt: skip
        await stack.install("wwmine", "me", via="callback")
        assert (await stack.installation("wwmine", status="active")).test is True
        await stack.install("wwother", "you", via="callback")
        assert (await stack.installation("wwother", status="active")).test is False
        moved = await stack.auth.request(AuthRequest(op="set_test", corp_id="wwother", test=True))
        assert moved["refused"] is None
        assert moved["installation"]["test"] is True
        assert (await stack.auth.request(_quota()))["corps"]["used"] == 0
        back = await stack.auth.request(AuthRequest(op="set_test", corp_id="wwmine", test=False))
        assert back["refused"] is None
        again = await stack.auth.request(AuthRequest(op="set_test", corp_id="wwother", test=False))
        assert again["refused"]["limit"] == "corps"


async def test_a_later_member_changes_no_corp_token(module_amqp_url: str, tmp_path: Path) -> None:
    """A later member's auth.granted carries the permanent code token_service holds: the
    corp's cached token stays, with no extra get_corp_token."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        await stack.install("wwkeep", "amy", via="callback")
        await stack.installation("wwkeep", status="active")
        first = await eventually(lambda: stack.tokens.get("corp", corp_id="wwkeep"))
        assert await stack.calls("/cgi-bin/service/get_corp_token") == 1
        # WeCom stamps events in whole seconds: the later member comes in a later one.
        await asyncio.sleep(1.1)
        await stack.install("wwkeep", "ben", via="callback")
        await eventually(lambda: _members(stack, "wwkeep", ["amy", "ben"]))
        await eventually(lambda: _has(stack, "auth.granted", 2))
        await wait_idle(stack)  # token_service has applied the second grant
        again = await stack.tokens.get("corp", corp_id="wwkeep")
        assert again.token == first.token
        assert await stack.calls("/cgi-bin/service/get_corp_token") == 1


async def test_going_offline_refuses_new_corps_and_members_and_keeps_the_installed(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """INSTALLS_OPEN=false: a new corp and a new member of an installed corp are refused
    (auth.rejected, installs_closed); the installed corp keeps its tokens and members."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        await stack.install("wwstay", "amy", via="callback")
        await stack.installation("wwstay", status="active")
        await stack.stop_services()
        stack.auth_settings = stack.auth_settings.model_copy(update={"installs_open": False})
        await stack.start_services()
        await stack.install("wwnew", "nia", via="callback")
        refused = await stack.installation("wwnew", status="refused")
        assert refused.reason == "installs_closed"
        await stack.publish("data.event.subscribe", {"FromUserName": "ben"}, corp_id="wwstay")
        await eventually(lambda: _has(stack, "auth.rejected", 2))
        rejected = [(e.corp_id, e.payload["limit"]) for e in stack.of_type("auth.rejected")]
        assert sorted(rejected) == [("wwnew", "installs_closed"), ("wwstay", "installs_closed")]
        assert all(e.payload["reason"] == "installs_closed" for e in stack.of_type("auth.rejected"))
        kept = await stack.installation("wwstay", status="active")
        assert kept.members == ["amy"]
        assert (await eventually(lambda: stack.tokens.get("corp", corp_id="wwstay"))).token


async def test_the_install_qr_code_is_served_cached_and_a_scan_installs_with_its_state(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """GET /install/qrcode answers the simulator's QR code (fetched once for concurrent
    requests); scanning it installs the corp, and auth.granted carries its state."""
    async with (
        install_stack(module_amqp_url, tmp_path, sim=NO_SIM_LIMITS) as stack,
        install_pages(stack) as pages,
    ):
        answers = await asyncio.gather(
            *(pages.get_bytes("/install/qrcode?state=spring24") for _ in range(5))
        )
        assert {status for status, _, _ in answers} == {200}
        assert {kind for _, kind, _ in answers} == {"image/png"}
        assert await stack.calls("/cgi-bin/service/get_app_qrcode") == 1
        url = await decode_qr(answers[0][2], tmp_path)
        scan = f"{url}&sim_corp=wwscan&sim_user=sam"
        async with pages.session.get(scan, allow_redirects=False) as response:
            assert response.status == 200
        found = await stack.installation("wwscan", status="active")
        assert found.test is False
        await eventually(lambda: _has(stack, "auth.granted", 1))
        assert stack.of_type("auth.granted")[0].payload["app_state"] == "spring24"
        status, _, _ = await pages.get_bytes("/install/qrcode?state=" + "x" * 33)
        assert status == 400


async def test_the_qr_code_page_says_release_first_when_wecom_refuses(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """An unreleased app (SIM_APP_RELEASED=false) gets a clear 503 page, not an image."""
    sim = {**NO_SIM_LIMITS, "sim_app_released": False}
    async with install_stack(module_amqp_url, tmp_path, sim=sim) as stack:
        async with install_pages(stack) as pages:
            status, kind, body = await pages.get_bytes("/install/qrcode")
        assert (status, kind) == (503, "text/html")
        text = body.decode()
        assert 'data-outcome="not_released"' in text
        assert "release it in the developer centre" in text


async def test_one_quota_warning_per_crossing_with_two_auth_service_processes(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """Twelve installs racing, consumed by two auth_service instances sharing the store: the
    80 % and 100 % crossings of the corps limit are announced once each."""
    async with install_stack(module_amqp_url, tmp_path, sim=NO_SIM_LIMITS) as stack:
        second = AuthService(stack.auth_settings, stack.bus, stack.bus_component)
        await second.start()
        try:
            answers = [
                await stack.install(f"wwwarn{index:02d}", "u", via="redirect")
                for index in range(12)
            ]
            await asyncio.gather(
                *(stack.publish("install.redirect", {"auth_code": a["auth_code"]}) for a in answers)
            )
            await eventually(lambda: _used(stack, "corps", 10, limit_value=10), timeout=30)
            await eventually(lambda: _has(stack, "auth.rejected", 2), timeout=30)
            await eventually(lambda: _has(stack, "auth.quota_warning", 2), timeout=30)
            await wait_idle(stack)  # a duplicate warning would have been delivered by now
        finally:
            await second.stop()
        warnings = sorted(
            (e.payload["limit"], e.payload["level"]) for e in stack.of_type("auth.quota_warning")
        )
        assert warnings == [("corps", 80), ("corps", 100)]
