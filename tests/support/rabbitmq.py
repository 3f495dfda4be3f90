"""The local RabbitMQ as the tests and benchmarks use it: probe, rabbitmqctl, queue counts,
throw-away vhosts, and stopping/starting the broker. One copy, used by tests/conftest.py,
tests/support/broker.py and bench/broker.py."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

HOST = "127.0.0.1"
PORT = 5672
RECOVERY_TIMEOUT = 60.0  # start_app on a slow CI box, plus quorum queues electing a leader
_CTL_TIMEOUT = 90.0  # rabbitmqctl boots an Erlang VM of its own before it does anything
# AMQP 0-9-1 protocol header; a broker answers it with a connection.start method frame.
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def probe(timeout: float = 2.0) -> str | None:
    """None when an AMQP broker answers the handshake, else why not."""
    try:
        with socket.create_connection((HOST, PORT), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_PROTOCOL_HEADER)
            frame = sock.recv(11)
    except OSError as exc:
        return f"no broker at {HOST}:{PORT} ({exc})"
    # frame type 1 (method), then class 10 / method 10: connection.start
    if len(frame) < 11 or frame[0] != 1 or frame[7:11] != b"\x00\x0a\x00\x0a":
        return f"{HOST}:{PORT} does not speak AMQP 0-9-1"
    return None


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q ARGS``; its standard output (raises FileNotFoundError,
    CalledProcessError, timeout)."""
    executable = shutil.which("rabbitmqctl")
    if executable is None:
        raise FileNotFoundError("rabbitmqctl")
    done = subprocess.run(  # noqa: S603 -- fixed arguments, no shell
        [executable, "-q", *args], check=True, capture_output=True, timeout=_CTL_TIMEOUT
    )
    return done.stdout.decode()


@dataclass(frozen=True)
class QueueCounts:
    """One queue as the broker counts it right now."""

    ready: int
    unacked: int
    consumers: int


def queue_counts(vhost: str) -> dict[str, QueueCounts]:
    """Every queue of ``vhost`` with its ready and unacknowledged messages and its consumers.

    AMQP's passive declare reports ready messages only; the unacknowledged ones (a handler
    still working) are what tells "idle" from "busy", and only rabbitmqctl reports them.
    """
    columns = ("name", "messages_ready", "messages_unacknowledged", "consumers")
    out = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", *columns)
    counts: dict[str, QueueCounts] = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        name, ready, unacked, consumers = line.rsplit("\t", 3)
        counts[name] = QueueCounts(int(ready), int(unacked), int(consumers))
    return counts


def vhost_of(url: str) -> str:
    """The virtual host an AMQP URL names (``/`` when it names none)."""
    return unquote(urlsplit(url).path[1:]) or "/"


@contextmanager
def fresh_vhost(prefix: str) -> Iterator[str]:
    """The AMQP URL of a new vhost (guest has every permission), deleted afterwards."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{quote(name, safe='')}"
    finally:
        rabbitmqctl("delete_vhost", name)


def start_and_wait() -> None:
    """``start_app``, then wait until the broker answers AMQP again."""
    rabbitmqctl("start_app")
    # start_app returns once the application booted; await_startup also covers a node that
    # was already starting. Then insist on an AMQP handshake, what clients actually need.
    rabbitmqctl("await_startup")
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while probe(timeout=1.0) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"RabbitMQ did not answer within {RECOVERY_TIMEOUT} s of start_app")
        time.sleep(0.2)


@contextmanager
def stopped() -> Iterator[None]:
    """The RabbitMQ application stopped for the block, always started again afterwards."""
    try:
        rabbitmqctl("stop_app")
        yield
    finally:
        start_and_wait()
