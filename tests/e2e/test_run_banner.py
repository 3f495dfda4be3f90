"""What `wecom-suite run` says once it listens: a human summary on a terminal, JSON otherwise,
and on HTTP_PORT=0 the port it actually bound."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.process import http_get

BANNER_TIMEOUT_S = 30.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _env(data_dir: Path, **overrides: str) -> dict[str, str]:
    child = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "AMQP_", "MONGO_", "DATA_", "LOG_", "SIM_", "HTTP_"))
    }
    child.update({"DATA_DIR": str(data_dir), "HTTP_PORT": "0", "SIM_HTTP_PORT": "0"})
    child.update(overrides)
    return child


@contextmanager
def _stopped_after(process: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def _read_until(fd: int, marker: str, process: subprocess.Popen[bytes]) -> str:
    """What ``fd`` gave until ``marker`` appeared (fails if the process exits or time runs out)."""
    seen = b""
    deadline = time.monotonic() + BANNER_TIMEOUT_S
    while marker.encode() not in seen:
        assert process.poll() is None, f"wecom-suite run exited: {seen.decode(errors='replace')}"
        assert time.monotonic() < deadline, f"no {marker!r} within {BANNER_TIMEOUT_S} s"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen += os.read(fd, 65536)
    return _ANSI.sub("", seen.decode(errors="replace"))


def test_terminal_banner_says_what_to_open_and_how_to_stop(tmp_path: Path) -> None:
    """On a terminal: what runs, the bound URLs, the key file's path, Ctrl-C; Ctrl-C stops it."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "wecom_suite", "run"],
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    with _stopped_after(process):
        text = _read_until(controller, "Stop: Ctrl-C", process)
        banner = text[text.index("wecom-suite is running") :]
        assert "gateway, token_service, auth_service, notifier, simulator" in banner
        gateway = re.search(r"install link\s+http://127\.0\.0\.1:(\d+)/install", banner)
        demo = re.search(r"demo\s+http://127\.0\.0\.1:(\d+)/demo/", banner)
        simulator = re.search(
            r"simulator \(the sandbox's WeCom\)\s+http://127\.0\.0\.1:(\d+)", banner
        )
        assert gateway is not None
        assert demo is not None
        assert simulator is not None
        port = int(gateway.group(1))
        assert port != 0
        assert int(demo.group(1)) == port
        assert int(simulator.group(1)) != 0
        assert f"Internal API key (INTERNAL_API_KEY): {tmp_path / 'internal-api.key'}" in banner
        # The advertised port is the bound one: the gateway answers there.
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    os.close(controller)


def test_piped_output_stays_json_with_the_bound_port(tmp_path: Path) -> None:
    """Not a terminal: no human banner, the sandbox_mode JSON line names the bound port and
    the key file's path in clear."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wecom_suite", "run"],
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    with _stopped_after(process):
        lines: list[dict[str, object]] = []
        deadline = time.monotonic() + BANNER_TIMEOUT_S
        while not any(line.get("event") == "service_ready" for line in lines):
            assert time.monotonic() < deadline, "wecom-suite run did not get ready"
            raw = process.stdout.readline()
            assert raw, "wecom-suite run closed its output"
            lines.append(json.loads(raw))
        [banner] = [line for line in lines if line.get("event") == "sandbox_mode"]
        install = str(banner["install_url"])
        port = int(install.removeprefix("http://127.0.0.1:").split("/", 1)[0])
        assert port != 0
        assert banner["command_callback_url"] == f"http://127.0.0.1:{port}/wecom/command"
        assert banner["internal_api_key_file"] == str(tmp_path / "internal-api.key")
        listening = [line for line in lines if line.get("event") == "http_listening"]
        assert {"gateway": port} == {
            str(line["server"]): line["port"] for line in listening if line["server"] == "gateway"
        }
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    process.stdout.close()
