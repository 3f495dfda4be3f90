"""The simulator's install QR code (protocol doc §8.11): get_app_qrcode answers a real QR code
(decoded here by zbarimg) that encodes its install URL; scanning it installs as WeCom does."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.sandbox import SANDBOX_SUITE_ID
from tests.support.qr import decode_qr
from tests.support.simulator import quiet_settings, serve_simulator

pytestmark = pytest.mark.integration

QRCODE = "/cgi-bin/service/get_app_qrcode"


async def test_the_qr_code_encodes_the_install_url_and_a_scan_installs(tmp_path: Path) -> None:
    """result_type 1 is a PNG whose code is the simulator's install URL with the state; opening
    it as a member installs the app and pushes create_auth with that State, no redirect."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        body = {"suite_id": SANDBOX_SUITE_ID, "state": "spring24", "result_type": 1}
        async with sim.session.post(
            sim.url(QRCODE), params={"suite_access_token": token}, json=body
        ) as response:
            assert response.status == 200
            assert response.content_type == "image/png"
            png = await response.read()
        url = await decode_qr(png, tmp_path)
        parts = urlsplit(url)
        assert parts.path == "/_sim/qr_install"
        assert parse_qs(parts.query) == {"suite_id": [SANDBOX_SUITE_ID], "state": ["spring24"]}
        assert url.startswith(sim.url("/").rstrip("/"))
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        status, location, text = await sim.page(
            parts.path, {**query, "sim_corp": "wwqr", "sim_user": "quinn"}
        )
        assert (status, location) == (200, None)
        assert 'data-pushed="create_auth"' in text
        corp = sim.state.installs.corps["wwqr"]
        assert [m.user_id for m in corp.installed_members] == ["quinn"]
        [code] = [c for c in sim.state.installs.auth_codes.values() if c.corp_id == "wwqr"]
        assert code.state == "spring24"


async def test_result_type_2_answers_the_image_url() -> None:
    """result_type 2 answers JSON with a URL that serves the same kind of PNG."""
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        answer = await sim.service(
            "get_app_qrcode", token, {"suite_id": SANDBOX_SUITE_ID, "result_type": 2}
        )
        assert answer["errcode"] == 0
        async with sim.session.get(answer["qrcode"]) as response:
            assert response.status == 200
            assert (await response.read()).startswith(b"\x89PNG")


async def test_an_unreleased_app_has_no_qr_code_and_bad_requests_get_errcodes() -> None:
    """SIM_APP_RELEASED=false answers an error, as WeCom for an app not yet online; a wrong
    suite_id, a bad state or a bad token get their errcodes."""
    async with serve_simulator(quiet_settings(sim_app_released=False)) as sim:
        token = await sim.suite_token()
        answer = await sim.service("get_app_qrcode", token, {"suite_id": SANDBOX_SUITE_ID})
        assert answer["errcode"] == 48002
    async with serve_simulator() as sim:
        token = await sim.suite_token()
        bad: list[tuple[str, dict[str, object], int]] = [
            (token, {"suite_id": "other"}, 40013),
            (token, {"suite_id": SANDBOX_SUITE_ID, "state": "x" * 33}, 40058),
            (token, {"suite_id": SANDBOX_SUITE_ID, "result_type": 3}, 40058),
            ("nope", {"suite_id": SANDBOX_SUITE_ID}, 40082),
        ]
        for suite_token, body, errcode in bad:
            assert (await sim.service("get_app_qrcode", suite_token, body))["errcode"] == errcode
