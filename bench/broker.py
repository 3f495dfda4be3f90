"""The local RabbitMQ for the benchmarks: a throw-away vhost, and stopping/starting the broker.

Benchmarks run in a vhost of their own (created with ``rabbitmqctl``, deleted after), so they
never touch another deployment's queues. ``stopped()`` restores the broker in a ``finally``
and waits until it answers AMQP again.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

HOST = "127.0.0.1"
PORT = 5672
_CTL_TIMEOUT = 90.0  # rabbitmqctl boots an Erlang VM of its own before it does anything
_RECOVERY_TIMEOUT = 60.0
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def unavailable() -> str | None:
    """None when the benchmarks can use the local broker, else why not."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH"
    if not answers():
        return f"no AMQP broker answers at {HOST}:{PORT}"
    return None


def rabbitmqctl(*args: str) -> None:
    executable = shutil.which("rabbitmqctl")
    if executable is None:
        raise FileNotFoundError("rabbitmqctl")
    subprocess.run([executable, "-q", *args], check=True, capture_output=True, timeout=_CTL_TIMEOUT)


def answers() -> bool:
    """Whether an AMQP broker answers the protocol header with connection.start."""
    try:
        with socket.create_connection((HOST, PORT), timeout=1.0) as sock:
            sock.settimeout(1.0)
            sock.sendall(_PROTOCOL_HEADER)
            frame = sock.recv(11)
    except OSError:
        return False
    return len(frame) >= 11 and frame[0] == 1 and frame[7:11] == b"\x00\x0a\x00\x0a"


@contextmanager
def vhost() -> Iterator[str]:
    """The AMQP URL of a fresh vhost (guest has every permission), deleted afterwards."""
    name = f"wecom-bench-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{quote(name, safe='')}"
    finally:
        rabbitmqctl("delete_vhost", name)


@contextmanager
def stopped() -> Iterator[None]:
    """The RabbitMQ application stopped (``stop_app``) for the block, then started again."""
    try:
        rabbitmqctl("stop_app")
        yield
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
        deadline = time.monotonic() + _RECOVERY_TIMEOUT
        while not answers():
            if time.monotonic() > deadline:
                raise TimeoutError(f"RabbitMQ did not answer within {_RECOVERY_TIMEOUT} s")
            time.sleep(0.2)
