"""`wecom-suite run` as a real process: both callback URLs in sandbox mode, SIGTERM."""

from __future__ import annotations

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
from tests.support.process import http_get, wecom_suite_run


@pytest.fixture
def running() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with wecom_suite_run(capture_output=True) as running:
        yield running


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
