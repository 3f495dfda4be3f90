"""token_service as real processes, and the events and calls the tests drive it with."""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.bus.abc import Bus, Message
from shared.bus.topology import EVENTS_EXCHANGE
from shared.contracts import EventEnvelope, permanent_code_context
from shared.sandbox import SANDBOX_SUITE_ID
from shared.storage.crypto import SecretBox
from tests.support.process import free_port, standalone_env, wait_ready

DATA_KEY = bytes(range(32))
READY_TIMEOUT_S = 30.0


@dataclass
class TokenProcesses:
    """Running ``python -m token_service`` processes sharing one DATA_DIR."""

    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, count: int = 1) -> None:
        started = []
        for _ in range(count):
            port = free_port()
            log_path = Path(self.env["DATA_DIR"]) / f"token-service-{len(self.logs)}.log"
            output = log_path.open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "token_service"],
                env={**self.env, "HTTP_PORT": str(port)},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            output.close()
            self.processes.append(process)
            self.ports.append(port)
            self.logs.append(log_path)
            started.append((process, port, log_path))
        for process, port, log_path in started:
            _wait_ready(process, port, log_path)

    def stop_all(self, *, timeout: float = 15.0) -> list[int]:
        """SIGTERM every process; their exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=timeout) for process in self.processes]
        self.processes.clear()
        self.ports.clear()
        return codes

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.processes.clear()
        self.ports.clear()

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs if path.exists())


def _wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    wait_ready(process, f"http://127.0.0.1:{port}", "token_service", log=log_path.read_text)


@contextmanager
def token_processes(
    *, amqp_url: str, api_base: str, data_dir: Path, extra: Mapping[str, str] | None = None
) -> Iterator[TokenProcesses]:
    """Configure (not start) token_service processes in sandbox mode against ``api_base``."""
    env = standalone_env(
        amqp_url,
        data_dir,
        drop=("TOKEN_",),
        WECOM_API_BASE=api_base,
        DATA_KEY=base64.b64encode(DATA_KEY).decode(),
        LOG_LEVEL="info",
        **(extra or {}),
    )
    cluster = TokenProcesses(env)
    try:
        yield cluster
    finally:
        cluster.kill_all()


def event(event_type: str, payload: dict[str, Any], *, corp_id: str | None = None) -> Message:
    """An event envelope as a service would publish it."""
    now = datetime.now(UTC)
    envelope = EventEnvelope(
        id=uuid.uuid4().hex,
        type=event_type,
        suite_id=SANDBOX_SUITE_ID,
        corp_id=corp_id,
        occurred_at=now,
        received_at=now,
        payload=payload,
    )
    return Message(
        body=envelope.model_dump_json(by_alias=True).encode(),
        message_id=envelope.id,
        type=event_type,
    )


async def publish_ticket(bus: Bus, ticket: str) -> None:
    await bus.publish(
        EVENTS_EXCHANGE,
        "command.suite_ticket",
        event("command.suite_ticket", {"suite_ticket": ticket}),
    )


async def publish_grant(bus: Bus, corp_id: str, permanent_code: str, agent_id: int) -> None:
    sealed = SecretBox(DATA_KEY).seal(permanent_code, context=permanent_code_context(corp_id))
    payload = {"corp_id": corp_id, "agent_id": agent_id, "permanent_code_sealed": sealed}
    await bus.publish(
        EVENTS_EXCHANGE, "auth.granted", event("auth.granted", payload, corp_id=corp_id)
    )


async def eventually(check: Any, *, timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Await ``check()`` until it returns without raising; its last result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(interval)
