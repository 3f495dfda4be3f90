"""`wecom-suite demo` as a real process: every step of the sandbox loop, and a broken one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.process import free_port
from wecom_suite.demo import Endpoints, Step, Walkthrough, metric_value, run_steps

STEPS = (
    "sandbox",
    "suite_ticket",
    "suite_token",
    "install",
    "user_message",
    "app_message",
    "uninstall",
)


def run_demo(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m wecom_suite demo` on free ports in a throw-away DATA_DIR, no credentials."""
    child = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "AMQP_", "MONGO_", "DEMO_", "SIM_", "INTERNAL_"))
    }
    child.pop("DATA_KEY", None)
    child.update(
        HTTP_PORT=str(free_port()),
        SIM_HTTP_PORT=str(free_port()),
        DATA_DIR=str(tmp_path),
        LOG_FORMAT="json",
        **env,
    )
    return subprocess.run(  # noqa: S603 -- our own module, fixed arguments
        [sys.executable, "-m", "wecom_suite", "demo", *args],
        env=child,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.mark.timeout(120)
def test_the_demo_walks_every_step_and_exits_0(tmp_path: Path) -> None:
    """Each step of the loop prints one ✓ line; no secret reaches the output."""
    done = run_demo(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    for step in STEPS:
        [line] = [line for line in lines if f" {step} " in f"{line} "]
        assert f"✓ {step}" in line, line
        assert " ms  " in line
    assert lines[-1] == "all steps happened"
    key = (tmp_path / "internal-api.key").read_text().strip()
    assert key not in done.stdout
    assert key not in done.stderr


@pytest.mark.timeout(120)
def test_a_step_that_cannot_happen_fails_the_demo_with_exit_1(tmp_path: Path) -> None:
    """DEMO_BREAK=app_message makes WeCom refuse every send: that step times out, the rest is
    skipped, the JSON timeline says so and the exit status is 1."""
    done = run_demo(tmp_path, "--json", DEMO_BREAK="app_message", DEMO_STEP_TIMEOUT_S="3")
    assert done.returncode == 1, done.stdout + done.stderr[-2000:]
    timeline = json.loads(done.stdout)
    assert timeline["ok"] is False
    outcome = {step["step"]: step["ok"] for step in timeline["steps"]}
    assert list(outcome) == list(STEPS)
    assert outcome == {**dict.fromkeys(STEPS, True), "app_message": False, "uninstall": False}
    by_name = {step["step"]: step for step in timeline["steps"]}
    assert "timed out after 3 s" in by_name["app_message"]["detail"]
    assert by_name["uninstall"]["detail"].startswith("skipped")


def test_a_bad_demo_break_is_a_configuration_error(tmp_path: Path) -> None:
    """An unknown DEMO_BREAK stops the command at once with status 2."""
    done = run_demo(tmp_path, DEMO_BREAK="nothing")
    assert done.returncode == 2
    assert "DEMO_BREAK" in done.stderr


async def test_steps_against_an_unreachable_sandbox_all_fail() -> None:
    """With nothing listening the first step times out and every later one is skipped."""
    dead = f"http://127.0.0.1:{free_port()}"
    at = Endpoints(dead, dead, Path("/nonexistent"), "wwcorp", "alice", api_key="x" * 16)
    seen: list[Step] = []
    async with aiohttp.ClientSession() as http:
        timeline = await run_steps(Walkthrough(http, at), timeout_s=0.3, on_step=seen.append)
    assert seen == timeline
    assert [step.step for step in timeline] == list(STEPS)
    assert not any(step.ok for step in timeline)
    assert "waiting for the sandbox" in timeline[0].detail
    assert "✗ sandbox" in timeline[0].line()


def test_metric_value_sums_the_samples_with_the_labels() -> None:
    """The ticket step reads the gateway's Prometheus text; other outcomes do not count."""
    text = "\n".join(
        [
            "# HELP wecom_suite_ticket_updates_total pushes",
            'wecom_suite_ticket_updates_total{outcome="stored"} 2.0',
            'wecom_suite_ticket_updates_total{outcome="older"} 5.0',
            'wecom_suite_ticket_updates_created{outcome="stored"} 1.7e9',
        ]
    )
    assert metric_value(text, "wecom_suite_ticket_updates_total", outcome="stored") == 2.0
    assert metric_value(text, "wecom_suite_ticket_updates_total", outcome="other") == 0.0
