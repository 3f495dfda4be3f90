"""The ``wecom-suite`` command itself: --version, a --help that says what each command does
and which settings it reads, and quiet ends when the reader of its output goes away."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.version import package_version
from wecom_suite.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (
    "run",
    "gateway",
    "simulator",
    "token-service",
    "auth-service",
    "notifier",
    "notify",
    "demo",
    "listing",
)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "wecom_suite", *args]


def test_version_prints_the_installed_version() -> None:
    """``wecom-suite --version`` names the package version and exits 0."""
    done = subprocess.run(  # noqa: S603 -- our own module, fixed arguments
        _cli("--version"), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"wecom-suite {package_version()}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_says_what_it_does(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each subcommand's --help has a description beyond its usage line."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith("usage:")
    assert len(rest.split("\n\n")[0].split()) >= 8, f"{command} --help says too little"


def test_the_settings_named_in_help_are_documented_settings() -> None:
    """A variable that --help points to is one that docs/configuration.md documents."""
    documented: set[str] = set()
    for doc in ("docs/configuration.md", "docs/simulator.md"):
        for first_cell in re.findall(r"^\| (`[^|]+)\|", (ROOT / doc).read_text(), re.M):
            documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    named: set[str] = set()
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                named |= set(re.findall(r"\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+\b", sub.epilog or ""))
    assert named
    assert named - documented == set()


def test_a_closed_output_pipe_ends_quietly(tmp_path: Path) -> None:
    """``wecom-suite listing check … | head`` that stops reading at once: no traceback, no
    "Exception ignored", and the status of a command ended by SIGPIPE (141)."""
    listing = tmp_path / "listing.yaml"
    subprocess.run(  # noqa: S603 -- our own module, fixed arguments
        _cli("listing", "init", str(listing)), check=True, capture_output=True
    )
    args = ("listing", "check", str(listing), "--lang", "en")
    process = subprocess.Popen(  # noqa: S603 -- our own module, fixed arguments
        _cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before a byte is written
    _, stderr = process.communicate(timeout=30)
    assert stderr == b""
    assert process.returncode == 141
