"""`wecom-suite run` in sandbox mode: a notification's result read over HTTP
(`GET /api/v1/notifications/{id}`), and `wecom-suite notify --wait` without AMQP_URL."""

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
from tests.support.process import free_port, wecom_suite_run


def _call(url: str, *, key: str | None = None, body: Any = None) -> tuple[int, Any]:
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


def _final(url: str, key: str, timeout: float = 20.0) -> dict[str, Any]:
    """The first answer of ``url`` that is not pending."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = _call(url, key=key)
        if status == 200 and answer.get("status") != "pending":
            return dict(answer)
        assert time.monotonic() < deadline, (status, answer)
        time.sleep(0.2)


def _notify_cli(base: str, data_dir: Path, corp: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- fixed arguments
        [sys.executable, "-m", "wecom_suite", "notify", "--corp", corp,
         "--user", SANDBOX_DEFAULT_USER, "--text", "hello, waiting", "--wait", "20"],
        env={**os.environ, "PUBLIC_BASE_URL": base, "DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_results_are_readable_over_http_and_the_cli_waits_for_them(tmp_path: Path) -> None:
    """The internal API answers a request's result (401 without the key, 404 for an unknown
    id); `notify --wait` prints the result and exits 0 only when it was sent."""
    env = {"DATA_DIR": str(tmp_path), "SIM_HTTP_PORT": str(free_port()), "SIM_LIMITS": "off"}
    with wecom_suite_run(env=env) as (_, base):
        with urllib.request.urlopen(f"{base}/install", timeout=30) as response:  # noqa: S310
            assert 'data-outcome="installed"' in response.read().decode()
        key = (tmp_path / "internal-api.key").read_text().strip()
        api = f"{base}/api/v1/notifications"
        assert _call(f"{api}/nobody-asked", key=key)[0] == 404
        assert _call(f"{api}/nobody-asked")[0] == 401

        request = {
            "id": "http-result-1",
            "corp_id": SANDBOX_DEFAULT_CORP,
            "to": {"users": [SANDBOX_DEFAULT_USER]},
            "message": {"msgtype": "text", "text": {"content": "hello over http"}},
        }
        assert _call(api, key=key, body=request)[0] == 202
        result = _final(f"{api}/http-result-1", key)
        assert result["request_id"] == "http-result-1"
        assert result["status"] == "sent"
        assert result["msgid"]

        sent = _notify_cli(base, tmp_path, SANDBOX_DEFAULT_CORP)
        assert sent.returncode == 0, sent.stderr
        lines = [json.loads(line) for line in sent.stdout.splitlines() if line.startswith("{")]
        assert lines[0]["id"].startswith("cli-")
        assert (lines[-1]["request_id"], lines[-1]["status"]) == (lines[0]["id"], "sent")

        # A corp that never installed the app: the result is failed, and so is the command.
        refused = _notify_cli(base, tmp_path, "wwnotinstalled")
        assert refused.returncode == 1, refused.stdout
        last = json.loads(refused.stdout.splitlines()[-1])
        assert last["status"] == "failed"
        assert "not installed" in last["errmsg"]
