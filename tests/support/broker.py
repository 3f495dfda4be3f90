"""Stopping and restarting the local RabbitMQ application, for the broker-restart tests.

``rabbitmqctl stop_app`` stops RabbitMQ inside its Erlang node (vhosts, queues and persistent
messages stay on disk); ``start_app`` brings it back. Every test that stops the broker must
restore it, because the rest of the session shares it: :func:`broker_stopped` does so in a
``finally`` and waits until the broker answers again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from tests.support import rabbitmq

RESTART_OPT_IN = "WECOM_TEST_BROKER_RESTART"
_OPT_IN_HINT = f"set REQUIRE_SERVICES=1 or {RESTART_OPT_IN}=1 to run it"
_NOT_OPTED_IN = "stops and restarts the shared RabbitMQ: " + _OPT_IN_HINT


def restart_guard() -> None:
    """Skip (or fail) the calling test unless it may stop and start the shared broker.

    Stopping the broker disturbs everything else using it, so it takes an opt-in:
    ``REQUIRE_SERVICES=1`` (CI, where the broker is ours) or ``WECOM_TEST_BROKER_RESTART=1``.
    Opted in but unable to do it (not root, no ``rabbitmqctl``) fails under
    ``REQUIRE_SERVICES=1`` and skips otherwise.
    """
    required = os.environ.get("REQUIRE_SERVICES") == "1"
    if not required and os.environ.get(RESTART_OPT_IN) != "1":
        pytest.skip(reason=_NOT_OPTED_IN)
    problem = None
    if shutil.which("rabbitmqctl") is None:
        problem = "rabbitmqctl is not on PATH"
    elif os.geteuid() != 0:
        problem = "rabbitmqctl stop_app/start_app needs root here"
    if problem is not None:
        if required:
            pytest.fail(f"broker restart required (REQUIRE_SERVICES=1) but impossible: {problem}")
        pytest.skip(reason=f"cannot restart the broker: {problem}")


@asynccontextmanager
async def broker_stopped() -> AsyncIterator[None]:
    """Stop the RabbitMQ application for the block; always start it again and wait for it."""
    try:
        await asyncio.to_thread(rabbitmq.rabbitmqctl, "stop_app")
        yield
    finally:
        await asyncio.to_thread(rabbitmq.start_and_wait)


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms until true; fail the test after ``timeout`` seconds.

    Used for state with no event to wait on (aio-pika's connection flags, the broker's).
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
