"""A notifier replica killed mid-burst (``kill -9``) at default settings: the other replica
resumes the dead one's claims within 30 s, every request gets a result, and no member gets
any message twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import rabbitmq
from tests.support.notifier import (
    notifier_process_env,
    notifier_rig,
    start_notifier_process,
    text_request,
    wait_notifier_ready,
)

pytestmark = pytest.mark.integration

SEND = "/cgi-bin/message/send"
REQUESTS = 300
# The bound on a dead replica's requests at default settings.
RECOVERY_BOUND_S = 30.0


@pytest.fixture(scope="module")
def vhost_url(amqp_url: str) -> Iterator[str]:
    """A vhost of this module's own: its durable queues die with it."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    with rabbitmq.fresh_vhost("wecom-notifier-takeover") as url:
        yield url


@pytest.mark.timeout(180)
async def test_a_killed_replicas_requests_resume_within_30_s_and_none_twice(
    vhost_url: str, tmp_path: Path
) -> None:
    """Two notifier processes share the store; one is killed with SIGKILL while the burst
    is under way (WeCom calls in flight). Recovery: from the kill to the last result."""
    async with notifier_rig(
        vhost_url,
        tmp_path,
        name="takeover",
        sim={"sim_limits": False},
        start_notifier=False,
    ) as rig:
        shared = tmp_path / "replicas"
        shared.mkdir()
        # Default claim and retry settings; only the send limits are off, so that the burst
        # is not spread over minutes.
        env = notifier_process_env(vhost_url, rig.api_base, shared)
        logs = [tmp_path / "replica-0.log", tmp_path / "replica-1.log"]
        replicas = [start_notifier_process(env, log) for log in logs]
        try:
            for (process, port), log in zip(replicas, logs, strict=True):
                await asyncio.to_thread(wait_notifier_ready, process, port, log)
            # Slow answers keep WeCom calls in flight when the kill comes.
            rig.proxy.hold(SEND, 0.05, times=REQUESTS)
            requests = [
                text_request(f"burst {n}", users=(("alice", "bob")[n % 2],))
                for n in range(REQUESTS)
            ]
            for request in requests:
                await rig.publish(request)
            async with asyncio.timeout(30), rig.results.changed:
                await rig.results.changed.wait_for(lambda: len(rig.results.by_id) >= REQUESTS // 5)
            victim = replicas[0][0]
            victim.kill()
            killed_at = time.perf_counter()
            victim.wait(timeout=10)
            for request in requests:
                await rig.results.wait(request["id"], timeout=60)
            recovery_s = max(rig.results.arrived.values()) - killed_at
        finally:
            for process, _ in replicas:
                if process.poll() is None:
                    process.kill()
                process.wait(timeout=10)
        print(f"recovery after kill -9: {recovery_s:.1f} s")
        assert recovery_s <= RECOVERY_BOUND_S, recovery_s
        statuses = Counter(rig.results.by_id[r["id"]][0].status for r in requests)
        assert statuses == {"sent": REQUESTS}, statuses
        delivered = Counter(
            entry["body"]["text"]["content"]
            for entry in await rig.sent()
            for outcome in entry["outcomes"].values()
            if outcome == "delivered"
        )
        assert set(delivered) == {f"burst {n}" for n in range(REQUESTS)}
        assert max(delivered.values()) == 1, delivered.most_common(3)
