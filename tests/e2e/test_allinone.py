"""`wecom-suite run` as a real process: both callback URLs in sandbox mode, SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from shared.sandbox import SANDBOX_AES_KEY, SANDBOX_SUITE_ID, SANDBOX_TOKEN
from shared.wecom.crypto import CallbackCipher
from shared.wecom.sealing import seal_callback, seal_verification
from tests.support.process import free_port, http_get, wecom_suite_run


@pytest.fixture
def sim_base(monkeypatch: pytest.MonkeyPatch) -> str:
    """The base URL of the simulator that sandbox mode starts (its port fixed for the test)."""
    port = free_port()
    monkeypatch.setenv("SIM_HTTP_PORT", str(port))
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def running(sim_base: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with wecom_suite_run(capture_output=True) as running:
        yield running


def sim_post(url: str) -> dict[str, object]:
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 -- loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback
        answer: dict[str, object] = json.loads(response.read())
    return answer


def wait_for_deliveries(sim_base: str, timeout: float = 10.0) -> list[dict[str, object]]:
    """The simulator's recorded deliveries once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = http_get(f"{sim_base}/_sim/deliveries")
        deliveries: list[dict[str, object]] = (
            json.loads(body)["deliveries"] if status == 200 else []
        )
        if deliveries or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.1)


def test_sandbox_serves_both_callback_urls_and_stops_on_sigterm(
    running: tuple[subprocess.Popen[bytes], str],
) -> None:
    """Verification and a callback work on both URLs; SIGTERM ends the process cleanly."""
    process, base = running
    cipher = CallbackCipher(SANDBOX_AES_KEY)
    now = int(time.time())
    for route in ("command", "data"):
        query = seal_verification(cipher, SANDBOX_TOKEN, "5550123", "", timestamp=now)
        assert http_get(f"{base}/wecom/{route}?{urlencode(query)}") == (200, b"5550123")
    ticket = (
        f"<xml><SuiteId>{SANDBOX_SUITE_ID}</SuiteId><InfoType>suite_ticket</InfoType>"
        f"<TimeStamp>{now}</TimeStamp><SuiteTicket>sandbox-ticket-1</SuiteTicket></xml>"
    ).encode()
    sealed = seal_callback(cipher, SANDBOX_TOKEN, ticket, "", timestamp=now)
    request = urllib.request.Request(  # noqa: S310 -- loopback
        f"{base}/wecom/command?{urlencode(sealed.query)}", data=sealed.body, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- loopback
        assert response.read() == b"success"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert process.stdout is not None
    output = process.stdout.read().decode()
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "sandbox_mode" in events
    assert "service_stopped" in events
    assert "sandbox-ticket-1" not in output


def test_sandbox_simulator_pushes_suite_tickets_to_the_gateway(
    running: tuple[subprocess.Popen[bytes], str], sim_base: str
) -> None:
    """The bundled simulator's ticket at start and on demand are delivered to /wecom/command."""
    process, base = running
    [at_start, *_] = wait_for_deliveries(sim_base)
    pushed = sim_post(f"{sim_base}/_sim/suite_ticket")
    status, body = http_get(f"{sim_base}/_sim/deliveries")

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert process.stdout is not None
    output = process.stdout.read().decode()
    assert at_start["kind"] == "suite_ticket"
    assert at_start["ok"] is True
    assert at_start["url"] == f"{base}/wecom/command"
    assert pushed["delivered"] is True
    assert status == 200
    assert all(d["ok"] for d in json.loads(body)["deliveries"])
    assert str(pushed["ticket"]) not in output


def test_sandbox_token_service_stores_the_simulators_ticket(
    running: tuple[subprocess.Popen[bytes], str], sim_base: str
) -> None:
    """The ticket the bundled simulator pushes at start reaches the bundled token_service,
    which is part of readiness."""
    process, base = running
    status, body = http_get(f"{base}/readyz")
    assert status == 200
    assert json.loads(body)["checks"] == {
        "bus": True,
        "store": True,
        "token_service": True,
        "auth_service": True,
        "notifier": True,
    }
    deadline = time.monotonic() + 10
    stored = 0.0
    while stored < 1 and time.monotonic() < deadline:
        _, metrics = http_get(f"{base}/metrics")
        for line in metrics.decode().splitlines():
            if line.startswith('wecom_suite_ticket_updates_total{outcome="stored"}'):
                stored = float(line.rsplit(" ", 1)[1])
        time.sleep(0.1)
    assert stored >= 1
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


@pytest.mark.timeout(90)
def test_piping_run_into_head_ends_it_quietly() -> None:
    """``wecom-suite run | head``: once the reader has gone, the process stops gracefully, with
    no "Logging error" or traceback per line on stderr."""
    with wecom_suite_run(capture_output=True) as (process, base):
        assert process.stdout is not None
        assert process.stdout.readline()  # the reader took a line, then goes away
        process.stdout.close()
        process.stdout = None  # the harness must not read or close it again
        # The next log line (the access log of this request) meets the closed pipe.
        with contextlib.suppress(OSError):
            http_get(base + "/no-such-page")
        returncode = process.wait(timeout=30)
        assert process.stderr is not None
        stderr = process.stderr.read()
    assert b"Logging error" not in stderr
    assert b"Traceback" not in stderr
    assert returncode == 0
