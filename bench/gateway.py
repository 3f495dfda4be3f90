"""Gateway benchmark: the full callback path against a trivial aiohttp handler.

One server process on loopback (``bench.gateway_server``), wrk as the load generator in a
second process replaying pre-generated, distinct, validly signed callbacks over 64
connections for 10 s. Reports callbacks/s, p50/p99 latency and the server's peak RSS for
both servers, their throughput ratio, and the in-process cost of one callback's
verify + decrypt + hardened parse + normalisation. Writes ``bench/results/gateway.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import broker
from gateway.callbacks.processor import CallbackParams, CallbackProcessor, ReceiveIdPolicy
from gateway.settings import GatewaySettings
from shared.wecom.crypto import CallbackCipher, verify_signature
from shared.wecom.events import normalize_callback
from shared.wecom.sealing import SealedCallback, seal_callback
from shared.wecom.xml import parse_envelope, parse_xml

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONNECTIONS = 64
# BENCH_DURATION_S and BENCH_ROUNDS shorten a run while working on the gateway; ``make bench``
# leaves them unset. BENCH_STEPS=0 skips the intermediate servers and the in-process costs.
DURATION_S = int(os.environ.get("BENCH_DURATION_S", "10"))
WARMUP_S = 2
# This kind of machine is a shared VM whose speed drifts by tens of percent from one run
# to the next: the two servers are measured in alternating rounds and the medians compared.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
STEPS = os.environ.get("BENCH_STEPS", "1") != "0"
CALLBACKS = 120_000
WARMUP_CALLBACKS = 30_000


def benchmark_message(index: int, now: int) -> bytes:
    return (
        "<xml><ToUserName><![CDATA[wwbenchcorp0001]]></ToUserName>"
        f"<FromUserName><![CDATA[member{index % 100:03d}]]></FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[benchmark message {index}: 你好]]></Content>"
        f"<MsgId>{7_000_000_000_000_000_000 + index}</MsgId><AgentID>1000002</AgentID></xml>"
    ).encode()


def _sealed(count: int, offset: int) -> list[SealedCallback]:
    settings = GatewaySettings()
    cipher = CallbackCipher(settings.encoding_aes_key.get_secret_value())
    token = settings.callback_token.get_secret_value()
    now = int(time.time())
    return [
        seal_callback(
            cipher, token, benchmark_message(offset + i, now), "", timestamp=now, nonce=str(i)
        )
        for i in range(count)
    ]


def _write_requests(path: Path, sealed: list[SealedCallback]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for item in sealed:
            out.write(f"/wecom/data?{urlencode(item.query)}\t{item.body.decode()}\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wrk(
    port: int, requests_file: Path, duration_s: int, connections: int = CONNECTIONS
) -> dict[str, Any]:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--timeout", "5s",
        "-s", str(ROOT / "wrk_callbacks.lua"), f"http://127.0.0.1:{port}", "--", str(requests_file),
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def _metric(port: int, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name}{{") and labels in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def stop_server(server: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM a benchmark server; kill it if it has not exited within ``timeout``."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput, plus every round's throughput and peak RSS."""
    ordered = sorted(runs, key=lambda run: float(run["rps"]))
    median = dict(ordered[len(ordered) // 2])
    median["rounds_rps"] = [round(float(run["rps"])) for run in runs]
    median["peak_rss_mb"] = max(float(run["peak_rss_mb"]) for run in runs)
    return median


def _serve_and_load(mode: str, warmup: Path, main: Path) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "LOG_LEVEL": "warning", "LOG_FORMAT": "json"}
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_server", "--mode", mode, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(port)
        _wrk(port, warmup, WARMUP_S)
        result = _wrk(port, main, DURATION_S)
        result["peak_rss_mb"] = _peak_rss_mb(server.pid)
        if mode in ("full", "skip-process"):
            result["accepted"] = _metric(port, "wecom_callbacks_total", 'outcome="accepted"')
            result["duplicates"] = _metric(port, "wecom_callbacks_total", 'outcome="duplicate"')
        return result
    finally:
        stop_server(server)


def _per_callback_cost() -> dict[str, float]:
    """Mean microseconds per callback of each step, in this process, on 5,000 callbacks."""
    settings = GatewaySettings()
    cipher = CallbackCipher(settings.encoding_aes_key.get_secret_value())
    token = settings.callback_token.get_secret_value()
    sealed = _sealed(5000, 10_000_000)
    params = [CallbackParams.from_query(s.query) for s in sealed]
    processor = CallbackProcessor(
        token=token,
        cipher=cipher,
        policy=ReceiveIdPolicy.from_setting(
            None, suite_id=settings.suite_id, provider_corp_id=None
        ),
        suite_id=settings.suite_id,
        timestamp_window_s=600,
        max_body_bytes=65536,
    )
    now = time.time()

    def timed(step: Callable[[int], object]) -> float:
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            for index in range(len(sealed)):
                step(index)
            samples.append((time.perf_counter() - started) / len(sealed) * 1e6)
        return round(min(samples), 2)

    outers = [parse_envelope(s.body) for s in sealed]
    plaintexts = [cipher.decrypt(o["Encrypt"]).msg for o in outers]
    received = datetime.now(UTC)
    return {
        "outer_parse_us": timed(lambda i: parse_envelope(sealed[i].body)),
        "verify_signature_us": timed(
            lambda i: verify_signature(
                token,
                params[i].timestamp,
                params[i].nonce,
                outers[i]["Encrypt"],
                params[i].signature,
            )
        ),
        "decrypt_us": timed(lambda i: cipher.decrypt(outers[i]["Encrypt"])),
        "inner_parse_normalize_us": timed(
            lambda i: normalize_callback("data", parse_xml(plaintexts[i]), received_at=received)
        ),
        "full_process_us": timed(
            lambda i: processor.process("data", params[i], sealed[i].body, now=now)
        ),
    }


def run() -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "bench/gateway.py needs wrk (Debian package 'wrk'); `make bench` installs it"
        )
    with tempfile.TemporaryDirectory() as tmp:
        warmup, main = Path(tmp) / "warmup.txt", Path(tmp) / "main.txt"
        _write_requests(warmup, _sealed(WARMUP_CALLBACKS, 0))
        _write_requests(main, _sealed(CALLBACKS, WARMUP_CALLBACKS))
        trivial_runs, full_runs = [], []
        for _ in range(ROUNDS):
            trivial_runs.append(_serve_and_load("trivial", warmup, main))
            full_runs.append(_serve_and_load("full", warmup, main))
        # One round of the intermediate servers: where the full path's time goes.
        modes = ("read", "process", "skip-process") if STEPS else ()
        steps = {mode: _serve_and_load(mode, warmup, main) for mode in modes}
    trivial, full = _median_run(trivial_runs), _median_run(full_runs)
    result = {
        "connections": CONNECTIONS,
        "duration_s": DURATION_S,
        "rounds": ROUNDS,
        "cpus": os.cpu_count(),
        "trivial": trivial,
        "full": full,
        "ratio": full["rps"] / trivial["rps"],
        "steps": {mode: round(float(run["rps"])) for mode, run in steps.items()},
        "per_callback": _per_callback_cost() if STEPS else {},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gateway.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))


# --- The gateway on RabbitMQ (run by bench/bus.py, in the vhost it creates) ---------------

BROKER_STOPPED_CALLBACKS = 200
WECOM_DEADLINE_MS = 1000.0  # WeCom gives up on a callback answer after 1000 ms


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _wait_readyz(port: int, status: int, timeout: float = 30.0) -> float:
    """Seconds until /readyz answers ``status``."""
    started = time.monotonic()
    while _readyz(port) != status:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"/readyz did not answer {status} within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def _post_callback(port: int, sealed: SealedCallback) -> tuple[int, float]:
    """POST one callback; its status and milliseconds to the full answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/wecom/data?{urlencode(sealed.query)}",
        data=sealed.body,
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- as above
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        status = int(exc.code)
    return status, (time.perf_counter() - started) * 1000


@contextmanager
def _rabbitmq_server(amqp_url: str, mode: str = "rabbitmq") -> Iterator[tuple[int, int]]:
    """A server in ``rabbitmq`` (ours) or ``peer`` mode on the broker, ready: (port, pid)."""
    port = _free_port()
    env = {**os.environ, "LOG_LEVEL": "warning", "LOG_FORMAT": "json", "AMQP_URL": amqp_url}
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_server", "--mode", mode, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port)
        if mode == "rabbitmq":  # the peer has no /readyz; it connects before it listens
            _wait_readyz(port, 200)
        yield port, server.pid
    finally:
        stop_server(server)


PEER_MIN_RATIO = 1.5
LOW_CONNECTIONS = 4


def _load_on_broker(
    amqp_url: str, mode: str, warmup: Path, main: Path, connections: int
) -> dict[str, Any]:
    with _rabbitmq_server(amqp_url, mode) as (port, pid):
        _wrk(port, warmup, WARMUP_S, connections)
        result = _wrk(port, main, DURATION_S, connections)
        result["peak_rss_mb"] = _peak_rss_mb(pid)
    return result


def run_peer(amqp_url: str) -> dict[str, Any]:
    """Our gateway against the peer (``bench/peer_wechatpy.py``) on the same broker: the same
    distinct valid callbacks, the same wrk, alternating rounds; the medians' ratio at
    ``CONNECTIONS`` connections, and each one's latency at ``LOW_CONNECTIONS``.

    Not written to ``results/``: ``bench/bus.py`` reports it with the bus numbers.
    """
    with tempfile.TemporaryDirectory() as tmp:
        warmup, main = Path(tmp) / "warmup.txt", Path(tmp) / "main.txt"
        _write_requests(warmup, _sealed(WARMUP_CALLBACKS, 0))
        _write_requests(main, _sealed(CALLBACKS, WARMUP_CALLBACKS))
        ours_runs, peer_runs = [], []
        for _ in range(ROUNDS):
            # Ours first: it declares the topology the peer publishes into.
            ours_runs.append(_load_on_broker(amqp_url, "rabbitmq", warmup, main, CONNECTIONS))
            peer_runs.append(_load_on_broker(amqp_url, "peer", warmup, main, CONNECTIONS))
        ours_low = _load_on_broker(amqp_url, "rabbitmq", warmup, main, LOW_CONNECTIONS)
        peer_low = _load_on_broker(amqp_url, "peer", warmup, main, LOW_CONNECTIONS)
    ours, peer = _median_run(ours_runs), _median_run(peer_runs)
    return {
        "connections": CONNECTIONS,
        "low_connections": LOW_CONNECTIONS,
        "duration_s": DURATION_S,
        "rounds": ROUNDS,
        "ours": ours,
        "peer": peer,
        "ratio": ours["rps"] / peer["rps"],
        "ours_low": ours_low,
        "peer_low": peer_low,
    }


def run_rabbitmq(amqp_url: str) -> dict[str, Any]:
    """The gateway benchmark with the RabbitMQ bus: ``ROUNDS`` rounds, the median one.

    Not written to ``results/``: ``bench/bus.py`` reports it with the bus numbers.
    """
    if shutil.which("wrk") is None:
        raise SystemExit("the gateway benchmark needs wrk (Debian package 'wrk')")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        warmup, main = Path(tmp) / "warmup.txt", Path(tmp) / "main.txt"
        _write_requests(warmup, _sealed(WARMUP_CALLBACKS, 0))
        _write_requests(main, _sealed(CALLBACKS, WARMUP_CALLBACKS))
        for _ in range(ROUNDS):
            with _rabbitmq_server(amqp_url) as (port, pid):
                _wrk(port, warmup, WARMUP_S)
                result = _wrk(port, main, DURATION_S)
                result["peak_rss_mb"] = _peak_rss_mb(pid)
                result["accepted"] = _metric(port, "wecom_callbacks_total", 'outcome="accepted"')
                result["unavailable"] = _metric(
                    port, "wecom_callbacks_total", 'outcome="unavailable"'
                )
            runs.append(result)
    median = _median_run(runs)
    median.update(connections=CONNECTIONS, duration_s=DURATION_S, rounds=ROUNDS)
    return median


def run_broker_stopped(amqp_url: str, callbacks: int = BROKER_STOPPED_CALLBACKS) -> dict[str, Any]:
    """With the broker stopped (``rabbitmqctl stop_app``), post ``callbacks`` distinct callbacks
    one after another to a gateway on RabbitMQ and time each answer; then start the broker and
    time from ``start_app`` until the gateway is ready, and check that it publishes again."""
    sealed = _sealed(callbacks + 2, 50_000_000)
    answers: list[tuple[int, float]] = []
    with _rabbitmq_server(amqp_url) as (port, _):
        before = _post_callback(port, sealed[0])[0]
        with broker.stopped():
            readyz_down_after_s = _wait_readyz(port, 503)
            answers = [_post_callback(port, item) for item in sealed[1 : callbacks + 1]]
            readyz_down = _readyz(port)
            # Timed from here: start_app, the broker's boot, and the bus reconnecting.
            start_app_at = time.monotonic()
        _wait_readyz(port, 200)
        recovery_s = time.monotonic() - start_app_at
        after = _post_callback(port, sealed[-1])[0]
    latencies = sorted(ms for _, ms in answers)
    return {
        "callbacks": callbacks,
        "status_before": before,
        "readyz_down_after_s": round(readyz_down_after_s, 3),
        "readyz_down": readyz_down,
        "statuses": {str(s): sum(1 for got, _ in answers if got == s) for s, _ in answers},
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "max_ms": round(latencies[-1], 2),
        "all_503_within_deadline": all(s == 503 and ms < WECOM_DEADLINE_MS for s, ms in answers),
        "recovery_s": round(recovery_s, 3),
        "status_after": after,
    }
