"""Fixtures shared by every suite: the RabbitMQ virtual host that broker-backed tests run in."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

BROKER_HOST = "127.0.0.1"
BROKER_PORT = 5672
PROBE_TIMEOUT = 2.0
# AMQP 0-9-1 protocol header; a broker answers it with a connection.start method frame.
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def _broker_answers() -> str | None:
    """None when an AMQP broker answers the handshake, else why not."""
    try:
        with socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=PROBE_TIMEOUT) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            sock.sendall(_PROTOCOL_HEADER)
            frame = sock.recv(11)
    except OSError as exc:
        return f"no broker at {BROKER_HOST}:{BROKER_PORT} ({exc})"
    # frame type 1 (method), then class 10 / method 10: connection.start
    if len(frame) < 11 or frame[0] != 1 or frame[7:11] != b"\x00\x0a\x00\x0a":
        return f"{BROKER_HOST}:{BROKER_PORT} does not speak AMQP 0-9-1"
    return None


def _rabbitmqctl(*args: str) -> None:
    executable = shutil.which("rabbitmqctl")
    if executable is None:
        raise FileNotFoundError("rabbitmqctl")
    # rabbitmqctl takes a couple of seconds to boot its Erlang VM; 60 s covers a slow CI box.
    subprocess.run(  # noqa: S603 -- fixed arguments, no shell
        [executable, "-q", *args], check=True, capture_output=True, timeout=60
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"RabbitMQ is required (REQUIRE_SERVICES=1) but unavailable: {reason}")
    pytest.skip(f"RabbitMQ unavailable ({reason}); set REQUIRE_SERVICES=1 to fail instead")


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """The AMQP URL of a virtual host created for this test session and deleted after it.

    Skips the tests that use it when no broker or no ``rabbitmqctl`` is available, unless
    ``REQUIRE_SERVICES=1``, when it fails them instead.
    """
    problem = _broker_answers()
    if problem is None and shutil.which("rabbitmqctl") is None:
        problem = "rabbitmqctl is not on PATH (it creates the test vhost)"
    if problem is not None:
        _unavailable(problem)
    vhost = f"wecom-test-{uuid.uuid4().hex[:12]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"rabbitmqctl could not create vhost {vhost}: {exc}")
    try:
        try:
            _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"rabbitmqctl could not grant guest access to {vhost}: {exc}")
        yield f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{quote(vhost, safe='')}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)
