"""`wecom-suite run` in sandbox mode, stopped with SIGTERM and started again on the same
DATA_DIR: the simulator still knows the install, so a notification to the member is sent; and
without its state file the restart says so in one warning."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from simulator.settings import SANDBOX_DEFAULT_CORP, SANDBOX_DEFAULT_USER
from tests.support.process import free_port, http_get, wecom_suite_run
from wecom_suite.demo import metric_value

STATE_FILE = "simulator-state.json"
TICKETS = "wecom_suite_ticket_updates_total"
UNKNOWN_WARNING = "sandbox_installs_unknown_to_simulator"


def install_through_the_pages(base: str) -> None:
    """/install → the simulator's install page → /install/complete, as a member would (once
    token_service stored the ticket pushed at start: /install needs a suite token)."""
    deadline = time.monotonic() + 30
    while metric_value(http_get(f"{base}/metrics")[1].decode(), TICKETS, outcome="stored") < 1:
        assert time.monotonic() < deadline, "no suite_ticket stored"
        time.sleep(0.1)
    with urllib.request.urlopen(f"{base}/install", timeout=30) as response:  # noqa: S310
        page = response.read().decode()
    assert 'data-outcome="installed"' in page


def stop(process: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    """SIGTERM, a clean exit, and the JSON log lines it wrote."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert process.stdout is not None
    lines = process.stdout.read().decode().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def read_until(process: subprocess.Popen[bytes], event: str, timeout: float = 30) -> list[Any]:
    """The process's JSON log lines up to the first ``event`` (or all of them by the deadline).

    Straight from the pipe's descriptor: a buffered readline could hold the line back.
    """
    assert process.stdout is not None
    fd, pending = process.stdout.fileno(), b""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(entry["event"] == event for entry in seen):
        if select.select([fd], [], [], 0.2)[0]:
            pending += os.read(fd, 65536)
            *lines, pending = pending.split(b"\n")
            seen += [json.loads(line) for line in lines if line.startswith(b"{")]
    return seen


def notify(base: str, data_dir: Path, text: str, *extra: str, **env: str) -> Any:
    """`wecom-suite notify` to the sandbox's member (asserting exit 0); its last answer."""
    done = subprocess.run(  # noqa: S603 -- our own module, fixed arguments
        [sys.executable, "-m", "wecom_suite", "notify", "--corp", SANDBOX_DEFAULT_CORP,
         "--user", SANDBOX_DEFAULT_USER, "--text", text, *extra],
        env={
            **os.environ,
            "PUBLIC_BASE_URL": base,
            "DATA_DIR": str(data_dir),
            "LOG_FORMAT": "json",
            **env,
        },
        capture_output=True,
        timeout=90,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # The bus client's own log lines share stdout; the command's answers carry no "event".
    printed = [json.loads(line) for line in done.stdout.decode().splitlines() if line[:1] == "{"]
    return [answer for answer in printed if "event" not in answer][-1]


def delivered_texts(sim: str) -> list[str]:
    """The texts /_sim/sent lists as delivered to the sandbox's member."""
    status, body = http_get(f"{sim}/_sim/sent")
    assert status == 200
    return [
        item["body"]["text"]["content"]
        for item in json.loads(body)["sent"]
        if item["outcomes"].get(SANDBOX_DEFAULT_USER) == "delivered"
    ]


def wait_for_text(sim: str, text: str, timeout: float = 30.0) -> list[str]:
    """/_sim/sent once it lists ``text`` as delivered (or whatever it lists at the deadline)."""
    deadline = time.monotonic() + timeout
    while text not in (texts := delivered_texts(sim)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return texts


@pytest.mark.timeout(180)
def test_after_a_restart_on_rabbitmq_notify_wait_reports_the_message_sent(
    tmp_path: Path, module_amqp_url: str
) -> None:
    """Install, send, SIGTERM, start again: `notify --wait` answers `sent`, /_sim/sent lists
    the messages of both runs, and the restart logs no incoherence warning."""
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    env = {"DATA_DIR": str(tmp_path), "SIM_HTTP_PORT": str(sim_port), "AMQP_URL": module_amqp_url}
    with wecom_suite_run(env=env, capture_output=True) as (process, base):
        install_through_the_pages(base)
        before = notify(base, tmp_path, "before the restart", "--wait", "30", **env)
        assert before["status"] == "sent", before
        stop(process)
    assert (tmp_path / STATE_FILE).exists()

    with wecom_suite_run(env=env, capture_output=True) as (process, base):
        after = notify(base, tmp_path, "after the restart", "--wait", "30", **env)
        texts = delivered_texts(sim)
        events = [entry["event"] for entry in stop(process)]
    assert after["status"] == "sent", after
    assert texts == ["before the restart", "after the restart"]
    assert "simulator_state_loaded" in events
    assert UNKNOWN_WARNING not in events


@pytest.mark.timeout(180)
def test_after_a_restart_on_the_in_process_bus_the_member_still_gets_messages(
    tmp_path: Path,
) -> None:
    """`make run`'s set-up (no AMQP_URL): after SIGTERM and a restart the install is still
    known to the simulator, the member can write to the app, and `notify` is delivered."""
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    env = {"DATA_DIR": str(tmp_path), "SIM_HTTP_PORT": str(sim_port)}
    with wecom_suite_run(env=env, capture_output=True) as (process, base):
        install_through_the_pages(base)
        stop(process)

    with wecom_suite_run(env=env, capture_output=True) as (process, base):
        notify(base, tmp_path, "after the restart")
        texts = wait_for_text(sim, "after the restart")
        message = {"corp_id": SANDBOX_DEFAULT_CORP, "user_id": SANDBOX_DEFAULT_USER}
        request = urllib.request.Request(  # noqa: S310 -- loopback
            f"{sim}/_sim/message",
            data=json.dumps({**message, "msgtype": "text", "content": "hi"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer = json.loads(response.read())
        events = [entry["event"] for entry in stop(process)]
    assert texts == ["after the restart"]
    assert answer["delivered"] is True
    assert UNKNOWN_WARNING not in events


@pytest.mark.timeout(180)
def test_a_restart_without_the_state_file_warns_once_what_to_do(tmp_path: Path) -> None:
    """The store says active, the simulator (its file deleted) knows nothing: one warning;
    installing again, as it says, makes notifications reach the member again."""
    sim_port = free_port()
    env = {"DATA_DIR": str(tmp_path), "SIM_HTTP_PORT": str(sim_port)}
    with wecom_suite_run(env=env, capture_output=True) as (process, base):
        install_through_the_pages(base)
        stop(process)
    (tmp_path / STATE_FILE).unlink()

    with wecom_suite_run(env=env, capture_output=True) as (process, base):
        seen = read_until(process, UNKNOWN_WARNING)
        install_through_the_pages(base)
        notify(base, tmp_path, "after installing again")
        texts = wait_for_text(f"http://127.0.0.1:{sim_port}", "after installing again")
        seen += stop(process)
    assert texts == ["after installing again"]
    [warning] = [entry for entry in seen if entry["event"] == UNKNOWN_WARNING]
    assert warning["level"] == "warning"
    assert warning["corps"] == {SANDBOX_DEFAULT_CORP: [SANDBOX_DEFAULT_USER]}
    assert "delete DATA_DIR" in warning["hint"]
