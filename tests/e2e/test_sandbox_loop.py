"""`wecom-suite run` in sandbox mode, end to end over HTTP: an install through the install
pages, the internal API, and a notification delivered to the member."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from simulator.settings import SANDBOX_DEFAULT_CORP, SANDBOX_DEFAULT_USER
from tests.support.process import free_port, http_get, wecom_suite_run


def call(url: str, *, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    """JSON over HTTP; errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 -- loopback
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.timeout(120)
def test_install_page_internal_api_and_a_notification(tmp_path: Path) -> None:
    """Sandbox: install, list it over the API, refuse a test install, deliver API and CLI sends."""
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    env = {"DATA_DIR": str(tmp_path), "SIM_HTTP_PORT": str(sim_port), "SIM_LIMITS": "off"}
    with wecom_suite_run(env=env) as (_, base):
        # /install → the simulator's install page → /install/complete: the outcome page.
        with urllib.request.urlopen(f"{base}/install", timeout=30) as response:  # noqa: S310
            page = response.read().decode()
            assert response.status == 200
            assert response.url.startswith(f"{base}/install/complete?")
        assert 'data-outcome="installed"' in page
        assert SANDBOX_DEFAULT_CORP in page or "Sim corp" in page

        key = (tmp_path / "internal-api.key").read_text().strip()
        assert call(f"{base}/api/v1/installations")[0] == 401
        assert call(f"{base}/api/v1/installations", key="wrong-key-0123456789")[0] == 401
        status, listed = call(f"{base}/api/v1/installations", key=key)
        assert status == 200
        [installation] = listed["installations"]
        assert installation["corp_id"] == SANDBOX_DEFAULT_CORP
        assert installation["members"] == [SANDBOX_DEFAULT_USER]
        assert installation["status"] == "active"
        status, quota = call(f"{base}/api/v1/quota", key=key)
        assert status == 200
        assert quota["corps"] == {"used": 1, "limit": 10}

        # A test install for the same member is refused: test and released never on one account.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/install?test=1", timeout=30)  # noqa: S310
        assert refused.value.code == 403
        assert 'data-outcome="refused:test_and_released"' in refused.value.read().decode()

        # A notification request through the internal API reaches the member.
        request = {
            "id": "sandbox-loop-1",
            "corp_id": SANDBOX_DEFAULT_CORP,
            "to": {"users": [SANDBOX_DEFAULT_USER]},
            "message": {"msgtype": "text", "text": {"content": "hello from the loop"}},
        }
        assert call(f"{base}/api/v1/notifications", key=key, body=request) == (
            202,
            {"id": "sandbox-loop-1"},
        )
        bad = call(f"{base}/api/v1/notifications", key=key, body={"id": "x", "to": {}})
        assert bad[0] == 400
        assert bad[1]["error"]["code"] == "invalid_request"

        def delivered() -> list[dict[str, Any]]:
            status, body = http_get(f"{sim}/_sim/sent")
            assert status == 200
            sent = json.loads(body)["sent"]
            assert sent, "nothing sent yet"
            return list(sent)

        [sent] = wait_for(delivered)
        assert sent["body"]["text"]["content"] == "hello from the loop"

        # `wecom-suite notify` without AMQP_URL goes through the same internal API.
        cli = subprocess.run(  # noqa: S603 -- fixed arguments
            [sys.executable, "-m", "wecom_suite", "notify", "--corp", SANDBOX_DEFAULT_CORP,
             "--user", SANDBOX_DEFAULT_USER, "--text", "hello from the CLI"],
            env={**os.environ, "PUBLIC_BASE_URL": base, "DATA_DIR": str(tmp_path)},
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["id"].startswith("cli-")

        def cli_delivered() -> list[str]:
            texts = [item["body"]["text"]["content"] for item in delivered()]
            assert "hello from the CLI" in texts, texts
            return texts

        wait_for(cli_delivered)
