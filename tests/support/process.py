"""Runs `wecom-suite run` as a real process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 -- loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# Settings a test process must not pass on to a service it starts: they would point the
# service at the developer's own broker, store or WeCom.
SERVICE_SETTING_PREFIXES = ("WECOM_", "AMQP_", "MONGO_", "DATA_")


def standalone_env(
    amqp_url: str, data_dir: Path, *, drop: tuple[str, ...] = (), **settings: str
) -> dict[str, str]:
    """The environment of one standalone service process in sandbox mode: this process's
    environment without WeCom, AMQP, MongoDB and data settings (nor those starting with one
    of ``drop``), then the broker, ``data_dir``, JSON logs, and ``settings`` (upper-case
    names) on top."""
    prefixes = SERVICE_SETTING_PREFIXES + drop
    env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    env.update(
        {
            "AMQP_URL": amqp_url,
            # Sandbox mode on purpose: a standalone service needs it asked for explicitly.
            "WECOM_SANDBOX": "1",
            "DATA_DIR": str(data_dir),
            "LOG_FORMAT": "json",
            **settings,
        }
    )
    return env


def wait_ready(
    process: subprocess.Popen[bytes],
    base: str,
    name: str,
    *,
    timeout_s: float = READY_TIMEOUT_S,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Until ``base``/readyz answers 200; fails the test, with ``log()``, if ``process`` exits
    first or ``timeout_s`` passes (the log says where start-up stopped)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with status {process.returncode}\n{log()}")
        try:
            if http_get(base + "/readyz")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not become ready in {timeout_s} s\n{log()}")
        time.sleep(0.1)


def wecom_suite_run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`wecom-suite run` with exactly ``env``, waited for until it exits (as a start refused
    for its settings does at once); its status and text output."""
    return subprocess.run(
        [sys.executable, "-m", "wecom_suite", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def wecom_suite_run(
    *,
    log_level: str = "info",
    capture_output: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A sandbox-mode `wecom-suite run` (no WeCom, AMQP or Mongo settings from the caller's
    environment) that answers /readyz; yields the process and its base URL, kills it after."""
    port = free_port()
    overrides = env or {}
    child = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "AMQP_", "MONGO_"))
    }
    child.update({"HTTP_PORT": str(port), "LOG_FORMAT": "json", "LOG_LEVEL": log_level})
    child.update(overrides)
    # The store and the sandbox data key live in a throw-away DATA_DIR, never the checkout.
    data_dir = tempfile.mkdtemp(prefix="wecom-suite-run-")
    child.setdefault("DATA_DIR", data_dir)
    if "DATA_KEY" not in overrides:
        child.pop("DATA_KEY", None)
    # Sandbox mode also starts the simulator; keep it off the fixed default port 8081.
    child.setdefault("SIM_HTTP_PORT", str(free_port()))
    output = subprocess.PIPE if capture_output else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "wecom_suite", "run"], env=child, stdout=output, stderr=output
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base, "wecom-suite run")
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(data_dir, ignore_errors=True)
