"""Instructions per request of the gateway benchmark's servers, counted by callgrind.

The throughput ratio of ``bench/gateway.py`` moves by 10-15 % between rounds on the shared VMs
these benchmarks run on, more than most changes to the callback path are worth. Instruction
counts do not: valgrind's callgrind counts what the server executes, whatever else the
machine is doing. Each server runs under callgrind with instrumentation off while it starts
and warms up; it is switched on for one wrk run (``callgrind_control -i on``/``off``), and the
instructions of that window are divided by the requests wrk completed in it (requests still
in flight at either switch make an error of about 1 %).

Instructions are not time: code that misses the CPU's caches takes longer for the same count.
The counts show where the work is and whether a change removed any, not the ratio itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.gateway import (
    _free_port,
    _sealed,
    _wait_listening,
    _write_requests,
    _wrk,
    stop_server,
)

MODES = ("trivial", "skip-process", "full")
DURATION_S = 20
WARMUP_S = 5
CALLBACKS = 40_000
WARMUP_CALLBACKS = 5_000
STARTUP_TIMEOUT_S = 180.0
_TOTALS = re.compile(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", re.MULTILINE)


def missing_tools() -> list[str]:
    return [tool for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "wrk")
            if shutil.which(tool) is None]  # fmt: skip


def _control(pid: int, *args: str) -> None:
    subprocess.run(
        ["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=60
    )


def _instructions(dump: Path) -> int:
    report = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(dump)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    match = _TOTALS.search(report)
    if match is None:
        raise RuntimeError(f"no PROGRAM TOTALS in the callgrind report of {dump}")
    return int(match.group(1).replace(",", ""))


def _measure(mode: str, warmup: Path, main: Path, workdir: Path) -> dict[str, Any]:
    port = _free_port()
    out = workdir / f"{mode}.callgrind"
    env = {**os.environ, "LOG_LEVEL": "warning", "LOG_FORMAT": "json"}
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "bench.gateway_server", "--mode", mode, "--port", str(port),
    ]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, timeout=STARTUP_TIMEOUT_S)
        _wrk(port, warmup, WARMUP_S)
        _control(server.pid, "-i", "on")
        result = _wrk(port, main, DURATION_S)
        _control(server.pid, "-i", "off")
        _control(server.pid, "-d")  # written to <out>.1
    finally:
        stop_server(server, timeout=60)  # valgrind takes a while to write its last dump
    requests = int(result["requests"])
    if result["non_2xx"] or not requests:
        raise RuntimeError(f"{mode} under callgrind: {result}")
    instructions = _instructions(out.with_name(out.name + ".1"))
    return {"requests": requests, "instructions_per_request": round(instructions / requests)}


def run() -> dict[str, Any]:
    """Instructions per request of each of ``MODES``, or why they were not counted."""
    missing = missing_tools()
    if missing:
        return {"skipped": f"needs {', '.join(missing)} (Debian packages valgrind and wrk)"}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        warmup, main = workdir / "warmup.txt", workdir / "main.txt"
        # Fresh callbacks: the gateway refuses timestamps older than its window.
        _write_requests(warmup, _sealed(WARMUP_CALLBACKS, 0))
        _write_requests(main, _sealed(CALLBACKS, WARMUP_CALLBACKS))
        return {mode: _measure(mode, warmup, main, workdir) for mode in MODES}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
