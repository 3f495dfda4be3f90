"""`wecom-suite run` as a real process: both callback URLs in sandbox mode, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from shared.sandbox import SANDBOX_AES_KEY, SANDBOX_SUITE_ID, SANDBOX_TOKEN
from shared.wecom.crypto import CallbackCipher
from shared.wecom.sealing import seal_callback, seal_verification


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 -- loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def running() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "AMQP_", "MONGO_"))
    }
    env.update({"HTTP_PORT": str(port), "LOG_FORMAT": "json", "LOG_LEVEL": "info"})
    process = subprocess.Popen(
        [sys.executable, "-m", "wecom_suite", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"wecom-suite run exited: {process.stdout.read()!r}")  # type: ignore[union-attr]
        try:
            if _get(base + "/readyz")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("wecom-suite run did not become ready in 30 s")
    try:
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_sandbox_serves_both_callback_urls_and_stops_on_sigterm(
    running: tuple[subprocess.Popen[bytes], str],
) -> None:
    """Verification and a callback work on both URLs; SIGTERM ends the process cleanly."""
    process, base = running
    cipher = CallbackCipher(SANDBOX_AES_KEY)
    now = int(time.time())
    for route in ("command", "data"):
        query = seal_verification(cipher, SANDBOX_TOKEN, "5550123", "", timestamp=now)
        assert _get(f"{base}/wecom/{route}?{urlencode(query)}") == (200, b"5550123")
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
    output = process.stdout.read().decode()  # type: ignore[union-attr]
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "sandbox_mode" in events
    assert "service_stopped" in events
    assert "sandbox-ticket-1" not in output
