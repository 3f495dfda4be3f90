"""The notifier wired for real on a RabbitMQ vhost: token_service in-process, a fake
``rpc.auth`` server, the simulator standing in for WeCom, and a collector of
``notify.result`` events."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from notifier.service import NOTIFIER_TOPOLOGY, NotifierService
from notifier.settings import NotifierSettings
from shared.bus.abc import Delivery, Message
from shared.bus.factory import BusComponent
from shared.bus.rabbitmq import RabbitMQBus
from shared.bus.topology import (
    BASE_TOPOLOGY,
    EVENTS_EXCHANGE,
    NOTIFY_EXCHANGE,
    NOTIFY_REQUEST_KEY,
    RPC_AUTH_QUEUE,
    Binding,
    QueueSpec,
    Topology,
)
from shared.lifecycle import Readiness
from shared.notify import NotifyResult
from shared.tokens import TokensClient
from simulator.app import STATE_KEY, build_simulator_app
from tests.support.process import free_port, http_get, standalone_env
from tests.support.simulator import SimulatorHarness, quiet_settings
from tests.support.tokens import DATA_KEY, eventually, publish_grant, publish_ticket
from token_service.service import TOKEN_TOPOLOGY, TokenService
from token_service.settings import TokenSettings

RESULTS_QUEUE = "test.notify.results"
RESULTS_TOPOLOGY = Topology(
    queues=(
        QueueSpec(
            RESULTS_QUEUE,
            bindings=(Binding(EVENTS_EXCHANGE, "notify.result"),),
            quorum=False,
            dead_letter=False,
            max_attempts=1,
        ),
    )
)
TOPOLOGY = BASE_TOPOLOGY.merged(TOKEN_TOPOLOGY, NOTIFIER_TOPOLOGY, RESULTS_TOPOLOGY)
CORP = "wwnotifycorp"
MEMBERS = ("alice", "bob")


class _WeComLikeServer(TestServer):
    """A TestServer that lets a handler finish when its client goes away, as WeCom (and the
    simulator's own process) does; aiohttp's TestServer cancels it, which would hide exactly
    the "timed out but delivered" case."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        kwargs["handler_cancellation"] = False
        return await super()._make_runner(**kwargs)


class SlowAnswers:
    """A proxy in front of the simulator that can hold back an answer after WeCom has acted
    on the request: the "timed out, but delivered" case. (The simulator's own delay faults
    wait before they read the request, so a client that gives up cancels the call.)"""

    def __init__(self, upstream: str, session: aiohttp.ClientSession) -> None:
        self._upstream = upstream
        self._session = session
        self._slow: dict[str, list[float]] = defaultdict(list)
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._forward)

    def hold(self, path: str, seconds: float, *, times: int = 1) -> None:
        self._slow[path].extend([seconds] * times)

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self._session.request(
            request.method,
            self._upstream + request.rel_url.path,
            params=request.rel_url.query,
            data=body,
            headers=headers,
        ) as answer:
            payload = await answer.read()
            status = answer.status
        held = self._slow.get(request.path)
        if held:
            await asyncio.sleep(held.pop(0))
        return web.Response(body=payload, status=status, content_type="application/json")


@dataclass
class Results:
    """Every ``notify.result`` seen, by request id."""

    by_id: dict[str, list[NotifyResult]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    # time.perf_counter() when the first result of each request arrived (benchmarks).
    arrived: dict[str, float] = field(default_factory=dict)

    async def handle(self, delivery: Delivery) -> None:
        envelope = json.loads(delivery.message.body)
        result = NotifyResult.model_validate(envelope["payload"])
        self.arrived.setdefault(result.request_id, time.perf_counter())
        async with self.changed:
            self.by_id[result.request_id].append(result)
            self.changed.notify_all()

    async def wait(self, request_id: str, *, count: int = 1, timeout: float = 20.0) -> NotifyResult:
        """The first result of ``request_id`` once ``count`` of them arrived."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.by_id.get(request_id, [])) >= count)
            return self.by_id[request_id][0]


@dataclass
class NotifierRig:
    sim: SimulatorHarness
    bus: RabbitMQBus
    results: Results
    service: NotifierService
    agent_id: int
    proxy: SlowAnswers
    # What a notifier process of its own would use as WECOM_API_BASE (the proxy).
    api_base: str = ""

    async def publish(
        self, request: dict[str, Any] | bytes, *, message_id: str | None = None
    ) -> None:
        body = request if isinstance(request, bytes) else json.dumps(request).encode()
        mid = message_id or (request["id"] if isinstance(request, dict) else uuid.uuid4().hex)
        await self.bus.publish(
            NOTIFY_EXCHANGE,
            NOTIFY_REQUEST_KEY,
            Message(body=body, message_id=mid, type="notify.request"),
        )

    async def sent(self) -> list[dict[str, Any]]:
        _, answer = await self.sim.call("GET", "/_sim/sent")
        sent: list[dict[str, Any]] = answer["sent"]
        return sent

    async def calls(self) -> dict[str, int]:
        _, answer = await self.sim.call("GET", "/_sim/calls")
        counts: dict[str, int] = answer["calls"]
        return counts

    async def fault(self, path: str, **fields: Any) -> None:
        status, answer = await self.sim.call("POST", "/_sim/faults", body={"path": path, **fields})
        assert status == 201, answer


def text_request(
    text: str, *, users: tuple[str, ...] = ("alice",), request_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": request_id or f"req-{uuid.uuid4().hex}",
        "corp_id": CORP,
        "to": {"users": list(users)},
        "message": {"msgtype": "text", "text": {"content": text}},
        **extra,
    }


def outcomes_for(sent: list[dict[str, Any]], user: str) -> list[str]:
    """What became of every send to ``user`` at the simulator, oldest first."""
    return [entry["outcomes"][user] for entry in sent if user in entry["outcomes"]]


def scaled_clock(factor: float, start: float | None = None) -> Callable[[], float]:
    """Real time running ``factor`` times faster: a simulator minute in 60/factor seconds."""
    origin = time.time() if start is None else start
    return lambda: origin + (time.time() - origin) * factor


def scaled_sleep(factor: float) -> Callable[[float], Awaitable[None]]:
    """``asyncio.sleep`` on a clock running ``factor`` times faster."""

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / factor)

    return sleep


async def _fake_auth(agent_id: int, members: tuple[str, ...]) -> Callable[[Message], Any]:
    async def answer(message: Message) -> bytes:
        request = json.loads(message.body)
        if request.get("corp_id") != CORP:
            return json.dumps({"installation": None}).encode()
        installation = {
            "corp_id": CORP,
            "agent_id": agent_id,
            "members": list(members),
            "status": "active",
        }
        return json.dumps({"installation": installation}).encode()

    return answer


async def _install(
    sim: SimulatorHarness, tokens: TokensClient, members: tuple[str, ...]
) -> tuple[str, int]:
    code = ""
    agent_id = 0
    for user in members:
        answer = await sim.install(CORP, user, via="redirect")
        suite = await tokens.get("suite")
        exchanged = await sim.service(
            "get_permanent_code", suite.token, {"auth_code": answer["auth_code"]}
        )
        code = exchanged["permanent_code"]
        agent_id = exchanged["auth_info"]["agent"][0]["agentid"]
    return code, agent_id


@asynccontextmanager
async def notifier_rig(
    amqp_url: str,
    tmp_path: Path,
    *,
    name: str,
    sim_clock: Callable[[], float] = time.time,
    sim: dict[str, Any] | None = None,
    notifier_clock: tuple[Callable[[], float], Callable[[float], Awaitable[None]]] | None = None,
    start_notifier: bool = True,
    members: tuple[str, ...] = MEMBERS,
    **notifier: Any,
) -> AsyncIterator[NotifierRig]:
    """Everything the notifier needs, started; ``notifier`` overrides NotifierSettings.

    With ``start_notifier`` False the in-process notifier is not started: the test runs
    notifier processes of its own against ``NotifierRig.api_base``. ``members`` install the
    app in the corp (each may receive messages).
    """
    app = build_simulator_app(quiet_settings(**(sim or {})), clock=sim_clock)
    server = _WeComLikeServer(app, host="127.0.0.1")
    await server.start_server()
    session = aiohttp.ClientSession()
    harness = SimulatorHarness(session, server, app[STATE_KEY])
    proxy = SlowAnswers(harness.url("").rstrip("/"), session)
    proxy_server = _WeComLikeServer(proxy.app, host="127.0.0.1")
    await proxy_server.start_server()
    api_base = str(proxy_server.make_url("")).rstrip("/")
    data_key = SecretStr(base64.b64encode(DATA_KEY).decode())
    bus = RabbitMQBus(amqp_url, TOPOLOGY, connection_name=name)
    component = BusComponent(bus)
    (tmp_path / "tokens").mkdir()
    (tmp_path / "notifier").mkdir()
    tokens_service = TokenService(
        TokenSettings(wecom_api_base=api_base, data_dir=tmp_path / "tokens", data_key=data_key),
        bus,
        component,
    )
    settings = NotifierSettings(
        wecom_api_base=api_base, data_dir=tmp_path / "notifier", data_key=data_key, **notifier
    )
    readiness = Readiness()
    clock, sleep = notifier_clock or (time.time, asyncio.sleep)
    service = NotifierService(
        settings, bus, component, readiness=readiness, clock=clock, sleep=sleep
    )
    results = Results()
    consumers = []
    try:
        await component.start()
        await component.connected()
        await tokens_service.start()
        tokens = TokensClient(bus, timeout_s=10)
        await publish_ticket(bus, await harness.push_ticket())
        await eventually(lambda: tokens.get("suite"))
        code, agent_id = await _install(harness, tokens, members)
        await publish_grant(bus, CORP, code, agent_id)
        await eventually(lambda: tokens.get("corp", corp_id=CORP))
        consumers.append(await bus.serve(RPC_AUTH_QUEUE, await _fake_auth(agent_id, members)))
        consumers.append(await bus.consume(RESULTS_QUEUE, results.handle, prefetch=256))
        if start_notifier:
            await service.start()

            async def ready() -> None:
                assert readiness.is_ready, readiness.status()

            await eventually(ready)
        yield NotifierRig(harness, bus, results, service, agent_id, proxy, api_base)
    finally:
        await service.stop()
        for consumer in consumers:
            await consumer.cancel(grace=1.0)
        await tokens_service.stop()
        await component.stop()
        await proxy_server.close()
        await session.close()
        await server.close()


def notifier_process_env(
    amqp_url: str, api_base: str, data_dir: Path, **settings: str
) -> dict[str, str]:
    """The environment of a standalone ``python -m notifier`` beside a rig: this process's
    environment without WeCom, AMQP, store or notifier settings, then the rig's broker,
    ``api_base`` as WeCom, ``data_dir`` as its store, the send limits off, and ``settings``
    (upper-case names) on top."""
    limits_off = {
        # Bursts to a few members would otherwise be spread over minutes.
        "NOTIFY_LIMIT_MEMBER_PER_MINUTE": "0",
        "NOTIFY_LIMIT_MEMBER_PER_HOUR": "0",
        "NOTIFY_LIMIT_APP_PER_DAY": "0",
    }
    return standalone_env(
        amqp_url,
        data_dir,
        drop=("NOTIFY_",),
        WECOM_API_BASE=api_base,
        DATA_KEY=base64.b64encode(DATA_KEY).decode(),
        **{**limits_off, **settings},
    )


def start_notifier_process(
    env: dict[str, str], log_path: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m notifier`` with ``env``, its output in ``log_path``; the process and the
    port of its /readyz."""
    port = free_port()
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "notifier"],
            env={**env, "HTTP_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, port


def wait_notifier_ready(
    process: subprocess.Popen[bytes], port: int, log_path: Path, *, timeout_s: float = 30.0
) -> None:
    """Block until the process answers /readyz (run it in a thread from async code).

    Raises:
        RuntimeError: the process exited, or was not ready in ``timeout_s`` (with its log).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the notifier exited:\n{log_path.read_text()}")
        try:
            if http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the notifier was not ready in {timeout_s} s:\n{log_path.read_text()}"
            )
        time.sleep(0.2)  # polling a starting process, not a "nothing happened" check
