"""``wecom-suite demo``: the sandbox loop end to end, printed as a timeline.

It starts the all-in-one sandbox in this process (services plus the bundled simulator), then
drives it through public surfaces only — the simulator's ``/_sim/`` control API, the
gateway's ``/install`` page, its internal API and ``/metrics`` — and checks that each step of
ticket → token → install → user message → app message → uninstall really happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import structlog

from shared.errors import ConfigurationError
from shared.settings import exit_on_configuration_error, load_settings
from simulator.settings import SimulatorSettings
from wecom_suite.allinone import AllInOneSettings, run_all

log = structlog.get_logger(__name__)

DEMO_TEXT = "Hello from the wecom-suite demo"
"""The only message text the demo sends or prints (both directions use it)."""

DEFAULT_STEP_TIMEOUT_S = 20.0
_POLL_S = 0.1
_SUITE_TOKEN = "/cgi-bin/service/get_suite_token"  # noqa: S105 -- an API path, not a token
_PRE_AUTH_CODE = "/cgi-bin/service/get_pre_auth_code"
_SEND = "/cgi-bin/message/send"
# DEMO_BREAK=<step>: arm a WeCom refusal (no retry, §12) so that step cannot happen, to show
# (and test) a failing walkthrough.
BREAKABLE = {
    "suite_token": {"path": _SUITE_TOKEN, "errcode": 40080, "times": None},
    "app_message": {"path": _SEND, "errcode": 48002, "times": None},
}
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # noqa: S104 -- compared against, never bound


class StepFailedError(Exception):
    """A step that did not happen; the message is the timeline's one-line detail."""


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the timeline."""

    step: str
    ok: bool
    elapsed_ms: int
    duration_ms: int
    detail: str

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        return f"{self.elapsed_ms:>7} ms  {mark} {self.step:<13} {self.detail}"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the sandbox listens, how to call its internal API, and who acts in it."""

    gateway: str
    simulator: str
    api_key_file: Path
    corp_id: str
    user_id: str
    api_key: str | None = None  # INTERNAL_API_KEY when set; else the generated key file

    def key(self) -> str:
        return self.api_key or self.api_key_file.read_text(encoding="utf-8").strip()


@dataclass
class Walkthrough:
    """The steps, each a coroutine answering its detail or raising :class:`StepFailedError`."""

    http: aiohttp.ClientSession
    at: Endpoints
    break_step: str | None = None
    sandbox: asyncio.Task[None] | None = None
    waiting_for: str = field(default="", init=False)
    _install_page: str = field(default="", init=False)

    def steps(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        return [
            ("sandbox", self.started),
            ("suite_ticket", self.suite_ticket),
            ("suite_token", self.suite_token),
            ("install", self.install),
            ("user_message", self.user_message),
            ("app_message", self.app_message),
            ("uninstall", self.uninstall),
        ]

    async def started(self) -> str:
        """The gateway and the simulator answer /readyz."""
        await self._until(self._ready, "the sandbox to answer /readyz")
        return f"gateway {self.at.gateway}, simulator {self.at.simulator}"

    async def suite_ticket(self) -> str:
        """The simulator pushed a suite_ticket and token_service stored it."""
        if await self._tickets_stored() < 1:
            # Like WeCom's "refresh ticket" button: push one now (SIM_TICKET_ON_START=false).
            await self._sim("POST", "/_sim/suite_ticket")
        await self._until(self._tickets_stored, "token_service to store a suite_ticket")
        deliveries = (await self._sim("GET", "/_sim/deliveries"))["deliveries"]
        ok = sum(1 for d in deliveries if d["kind"] == "suite_ticket" and d["ok"])
        return f"pushed to /wecom/command ({ok} delivered), stored by token_service"

    async def suite_token(self) -> str:
        """/install needs a pre_auth_code, so token_service mints a suite_access_token."""
        await self._arm_break("suite_token")
        async with self.http.get(f"{self.at.gateway}/install", allow_redirects=False) as page:
            location = page.headers.get("Location", "")
            if page.status != 302 or not location.startswith(self.at.simulator):
                raise StepFailedError(f"/install answered {page.status}, not the install page")
        self._install_page = location
        calls = (await self._sim("GET", "/_sim/calls"))["calls"]
        if not calls.get(_SUITE_TOKEN) or not calls.get(_PRE_AUTH_CODE):
            raise StepFailedError("no get_suite_token/get_pre_auth_code call reached WeCom")
        return f"get_suite_token ×{calls[_SUITE_TOKEN]}, then a pre_auth_code for /install"

    async def install(self) -> str:
        """The member follows the install page back to /install/complete: active install."""
        if not self._install_page:
            raise StepFailedError("no install page to visit")
        async with self.http.get(self._install_page) as page:
            outcome = re.search(r'data-outcome="([^"]*)"', await page.text())
        if outcome is None or outcome.group(1) not in ("installed", "processing"):
            raise StepFailedError(f"install page outcome: {outcome and outcome.group(1)}")
        found = await self._until(lambda: self._installation("active"), "an active installation")
        return f"{found['corp_id']} active, members {', '.join(found['members'])}"

    async def user_message(self) -> str:
        """The member writes to the app; the data callback reaches the gateway."""
        body = {"corp_id": self.at.corp_id, "user_id": self.at.user_id, "content": DEMO_TEXT}
        answer = await self._sim("POST", "/_sim/message", {"msgtype": "text", **body})
        deliveries = (await self._sim("GET", "/_sim/deliveries"))["deliveries"]
        data = [d for d in deliveries if d["route"] == "data"]
        if not answer.get("delivered") or not data or not data[-1]["ok"]:
            raise StepFailedError("the data callback was not delivered to /wecom/data")
        return f"text from {self.at.user_id} delivered to /wecom/data (HTTP {data[-1]['status']})"

    async def app_message(self) -> str:
        """A notification request through the internal API reaches the member."""
        await self._arm_break("app_message")
        request = {
            "id": f"demo-{uuid.uuid4().hex[:12]}",
            "corp_id": self.at.corp_id,
            "to": {"users": [self.at.user_id]},
            "message": {"msgtype": "text", "text": {"content": DEMO_TEXT}},
        }
        status, _ = await self._api("POST", "/api/v1/notifications", request)
        if status != 202:
            raise StepFailedError(f"/api/v1/notifications answered {status}")
        await self._until(self._delivered_to_member, "message/send to deliver the message")
        return f"/api/v1/notifications → message/send delivered to {self.at.user_id}"

    async def uninstall(self) -> str:
        """Every member removes the app: cancel_auth is pushed and the install revoked."""
        answer = await self._sim("POST", "/_sim/uninstall", {"corp_id": self.at.corp_id})
        if answer.get("pushed") != "cancel_auth" or not answer.get("delivered"):
            raise StepFailedError("cancel_auth was not delivered to /wecom/command")
        await self._until(lambda: self._installation("revoked"), "the installation to be revoked")
        return f"cancel_auth delivered, {self.at.corp_id} revoked"

    # -- reading the public surfaces ------------------------------------------------------

    async def _until(self, check: Callable[[], Awaitable[Any]], waiting_for: str) -> Any:
        """Poll ``check`` until it answers something truthy; the step's timeout ends it."""
        self.waiting_for = waiting_for
        # Remote state behind HTTP: nothing to wait on but the next answer.
        while not (found := await check()):  # noqa: ASYNC110
            await asyncio.sleep(_POLL_S)
        self.waiting_for = ""
        return found

    async def _ready(self) -> bool:
        if self.sandbox is not None and self.sandbox.done():
            raise StepFailedError(_why_stopped(self.sandbox))
        for base in (self.at.gateway, self.at.simulator):
            try:
                async with self.http.get(f"{base}/readyz") as response:
                    if response.status != 200:
                        return False
            except aiohttp.ClientConnectionError:
                return False
        return True

    async def _tickets_stored(self) -> float:
        async with self.http.get(f"{self.at.gateway}/metrics") as response:
            text = await response.text()
        return metric_value(text, "wecom_suite_ticket_updates_total", outcome="stored")

    async def _installation(self, status: str) -> dict[str, Any] | None:
        _, listed = await self._api("GET", "/api/v1/installations")
        for found in listed.get("installations", []):
            if found["corp_id"] == self.at.corp_id and found["status"] == status:
                return dict(found)
        return None

    async def _delivered_to_member(self) -> bool:
        for sent in (await self._sim("GET", "/_sim/sent"))["sent"]:
            is_demo = sent["body"].get("text", {}).get("content") == DEMO_TEXT
            if is_demo and sent["outcomes"].get(self.at.user_id) == "delivered":
                return True
        return False

    async def _arm_break(self, step: str) -> None:
        if self.break_step == step:
            await self._sim("POST", "/_sim/faults", BREAKABLE[step])

    async def _sim(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        async with self.http.request(method, f"{self.at.simulator}{path}", json=body) as answer:
            if answer.status >= 300:
                raise StepFailedError(f"{method} {path} answered {answer.status}")
            decoded: dict[str, Any] = await answer.json()
            return decoded

    async def _api(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.at.key()}"}
        url = f"{self.at.gateway}{path}"
        async with self.http.request(method, url, json=body, headers=headers) as answer:
            return answer.status, await answer.json(content_type=None)


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples carrying ``labels`` in a Prometheus text exposition."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in exposition.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.split("{", 1)[0] == name and all(label in sample for label in wanted):
            total += float(value)
    return total


async def run_steps(
    walk: Walkthrough, *, timeout_s: float, on_step: Callable[[Step], None]
) -> list[Step]:
    """Run the steps in order, each within ``timeout_s``; after a failure the rest is skipped."""
    started = time.monotonic()
    timeline: list[Step] = []
    failed = False
    for name, run in walk.steps():
        begun = time.monotonic()
        if failed:
            ok, detail = False, "skipped: an earlier step did not happen"
        else:
            ok, detail = await _attempt(walk, run, timeout_s)
            failed = not ok
        now = time.monotonic()
        step = Step(name, ok, _ms(now - started), _ms(now - begun), detail)
        timeline.append(step)
        on_step(step)
    return timeline


async def _attempt(
    walk: Walkthrough, run: Callable[[], Awaitable[str]], timeout_s: float
) -> tuple[bool, str]:
    walk.waiting_for = ""
    try:
        async with asyncio.timeout(timeout_s):
            return True, await run()
    except StepFailedError as exc:
        return False, str(exc)
    except TimeoutError:
        return False, f"timed out after {timeout_s:g} s waiting for {walk.waiting_for or 'WeCom'}"
    except (aiohttp.ClientError, ValueError, KeyError) as exc:
        # The class only: a message could carry a URL with a code in it.
        return False, f"{type(exc).__name__} talking to the sandbox"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _why_stopped(sandbox: asyncio.Task[None]) -> str:
    if sandbox.cancelled():
        return "the sandbox was cancelled"
    exc = sandbox.exception()
    if isinstance(exc, ConfigurationError | OSError):
        return f"the sandbox stopped: {exc}"  # configuration and socket errors name no secret
    return f"the sandbox stopped: {type(exc).__name__}" if exc else "the sandbox stopped"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the command line chose."""

    as_json: bool = False
    timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    break_step: str | None = None


def demo_settings(data_dir: Path | None) -> AllInOneSettings:
    """The sandbox's settings from the environment, quieter and in ``data_dir`` if given."""
    settings = load_settings(AllInOneSettings)
    if not settings.sandbox:
        raise ConfigurationError("the demo runs in sandbox mode only: unset WECOM_SUITE_ID")
    update: dict[str, object] = {}
    if data_dir is not None:
        update["data_dir"] = data_dir
    if "log_level" not in settings.model_fields_set:
        update["log_level"] = "warning"  # the timeline is the output; logs go to stderr
    return settings.model_copy(update=update)


def endpoints_of(settings: AllInOneSettings, sim: SimulatorSettings) -> Endpoints:
    """Where the sandbox run with ``settings`` listens (a wildcard host via loopback)."""
    gateway_host = "127.0.0.1" if settings.http_host in _WILDCARD_HOSTS else settings.http_host
    sim_host = "127.0.0.1" if sim.sim_http_host in _WILDCARD_HOSTS else sim.sim_http_host
    key = settings.internal_api_key
    return Endpoints(
        gateway=f"http://{gateway_host}:{settings.http_port}",
        simulator=f"http://{sim_host}:{sim.sim_http_port}",
        api_key_file=settings.data_dir / "internal-api.key",
        corp_id=sim.sim_default_corp,
        user_id=sim.sim_default_user,
        api_key=None if key is None else key.get_secret_value().strip(),
    )


async def run_demo(options: DemoOptions, out: TextIO) -> int:
    """Start the sandbox, walk the loop, print the timeline to ``out``; 0 if all happened."""
    with ExitStack() as temporary:
        data_dir = None
        if "DATA_DIR" not in os.environ:
            data_dir = Path(temporary.enter_context(tempfile.TemporaryDirectory(prefix="demo-")))
        settings = demo_settings(data_dir)
        at = endpoints_of(settings, load_settings(SimulatorSettings))
        stop = asyncio.Event()
        sandbox = asyncio.create_task(run_all(settings, stop=stop), name="demo-sandbox")
        try:
            timeline = await _walk(options, at, sandbox, out)
        finally:
            stop.set()
            await _stopped(sandbox)
    ok = all(step.ok for step in timeline)
    if options.as_json:
        document = {"ok": ok, "steps": [asdict(step) for step in timeline]}
        print(json.dumps(document, ensure_ascii=False, indent=2), file=out)
    else:
        print("all steps happened" if ok else "the walkthrough is incomplete", file=out)
    return 0 if ok else 1


async def _walk(
    options: DemoOptions, at: Endpoints, sandbox: asyncio.Task[None], out: TextIO
) -> list[Step]:
    def show(step: Step) -> None:
        if not options.as_json:
            print(step.line(), file=out, flush=True)

    async with AsyncExitStack() as stack:
        timeout = aiohttp.ClientTimeout(total=options.timeout_s)
        http = await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
        walk = Walkthrough(http, at, break_step=options.break_step, sandbox=sandbox)
        return await run_steps(walk, timeout_s=options.timeout_s, on_step=show)


async def _stopped(sandbox: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(sandbox, timeout=30)
    except (TimeoutError, asyncio.CancelledError):
        sandbox.cancel()
    except Exception as exc:  # any start failure; the "sandbox" step reported it
        log.info("demo_sandbox_failed", error=type(exc).__name__)


def demo_command(*, as_json: bool, timeout_s: float | None) -> int:
    """``wecom-suite demo``: exit status 0 when every step happened, 1 otherwise."""
    # The simulator reads SIM_HTTP_PORT from the environment itself (run_all), so free
    # ports are chosen there, for this process only, unless the caller chose them.
    os.environ.setdefault("HTTP_PORT", str(free_port()))
    os.environ.setdefault("SIM_HTTP_PORT", str(free_port()))
    break_step = os.environ.get("DEMO_BREAK") or None
    if break_step is not None and break_step not in BREAKABLE:
        exit_on_configuration_error(f"DEMO_BREAK must be one of {', '.join(BREAKABLE)}")
    options = DemoOptions(
        as_json=as_json, timeout_s=timeout_s or _env_timeout(), break_step=break_step
    )
    out = sys.stdout
    try:
        # Service logs go to stderr: stdout carries the timeline (or its JSON) alone.
        with redirect_stdout(sys.stderr):
            return asyncio.run(run_demo(options, out))
    except ConfigurationError as exc:
        exit_on_configuration_error(exc.message)
    except KeyboardInterrupt:
        return 1


def _env_timeout() -> float:
    raw = os.environ.get("DEMO_STEP_TIMEOUT_S") or str(DEFAULT_STEP_TIMEOUT_S)
    try:
        timeout_s = float(raw)
    except ValueError:
        timeout_s = 0.0
    if not 0 < timeout_s <= 600:
        exit_on_configuration_error("DEMO_STEP_TIMEOUT_S must be a number of seconds (0, 600]")
    return timeout_s


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
