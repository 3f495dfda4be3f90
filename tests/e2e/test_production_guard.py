"""The production guard, as processes: a standalone service never falls into sandbox mode by
omission, the standalone simulator never signs with real credentials by accident, and
`wecom-suite run` keeps sandbox mode as its default, visibly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from shared.settings import SANDBOX_REFUSED
from simulator.service import REAL_CREDENTIALS_REFUSED
from tests.support.process import free_port, http_get, wecom_suite_run

GOOD_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
REAL = {
    "WECOM_SUITE_ID": "wwrealsuite",
    "WECOM_SUITE_SECRET": "real-secret-value",
    "WECOM_TOKEN": "realtoken",
    "WECOM_ENCODING_AES_KEY": GOOD_KEY,
}
STANDALONE = [
    ["-m", "gateway"],
    ["-m", "token_service"],
    ["-m", "auth_service"],
    ["-m", "notifier"],
    ["-m", "wecom_suite", "simulator"],
]


def start(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with only ``env`` (plus PATH); it must exit on its own."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json"}
    return subprocess.run(  # noqa: S603 -- fixed arguments, no shell
        [sys.executable, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", STANDALONE, ids=lambda args: args[-1])
def test_a_standalone_service_without_suite_id_refuses_to_start(args: list[str]) -> None:
    """No WECOM_SUITE_ID and no WECOM_SANDBOX=1: exit 2 with one line naming both."""
    result = start(args, {"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"configuration error: {SANDBOX_REFUSED}"]
    assert "WECOM_SUITE_ID" in SANDBOX_REFUSED
    assert "WECOM_SANDBOX=1" in SANDBOX_REFUSED


def test_the_standalone_simulator_refuses_real_credentials() -> None:
    """With real WECOM_* credentials the simulator would sign callbacks with them: exit 2."""
    result = start(["-m", "wecom_suite", "simulator"], REAL)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: {REAL_CREDENTIALS_REFUSED}"
    ]
    assert "SIM_ALLOW_REAL_CREDENTIALS=1" in REAL_CREDENTIALS_REFUSED
    assert REAL["WECOM_SUITE_SECRET"] not in result.stderr


def test_wecom_suite_run_keeps_sandbox_as_its_default_and_says_so() -> None:
    """`wecom-suite run` without credentials or WECOM_SANDBOX starts, in visible sandbox mode."""
    with wecom_suite_run() as (_, base):
        status, body = http_get(base + "/readyz")
        assert status == 200
        assert json.loads(body)["sandbox_mode"] is True
        _, metrics = http_get(base + "/metrics")
    assert "wecom_sandbox_mode 1.0" in metrics.decode()


@pytest.mark.parametrize(
    ("env", "sandbox"),
    [({"WECOM_SANDBOX": "1"}, 1.0), ({**REAL, "SIM_ALLOW_REAL_CREDENTIALS": "1"}, 0.0)],
    ids=["sandbox-asked-for", "real-credentials-allowed"],
)
def test_the_standalone_simulator_starts_when_asked_explicitly(
    env: dict[str, str], sandbox: float
) -> None:
    """WECOM_SANDBOX=1, or real credentials with SIM_ALLOW_REAL_CREDENTIALS=1: it serves, and
    /metrics says which keys it signs with."""
    port = free_port()
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "wecom_suite", "simulator"],
        env={**base, **env, "SIM_HTTP_PORT": str(port), "SIM_TICKET_ON_START": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"the simulator exited with {process.returncode}"
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/readyz")
                break
            except OSError:
                assert time.monotonic() < deadline, "the simulator did not answer in 30 s"
                time.sleep(0.1)
        assert status == 200
        assert json.loads(body)["sandbox_mode"] is bool(sandbox)
        _, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        assert f"wecom_sandbox_mode {sandbox}" in metrics.decode()
    finally:
        process.kill()
        process.wait(timeout=10)
