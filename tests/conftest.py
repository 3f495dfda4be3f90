"""Fixtures shared by every suite: the RabbitMQ virtual host that broker-backed tests run in."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from typing import NoReturn

import pytest

from tests.support import rabbitmq


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"RabbitMQ is required (REQUIRE_SERVICES=1) but unavailable: {reason}")
    pytest.skip(reason=f"RabbitMQ unavailable ({reason}); set REQUIRE_SERVICES=1 to fail instead")


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """The AMQP URL of a virtual host created for this test session and deleted after it.

    Skips the tests that use it when no broker or no ``rabbitmqctl`` is available, unless
    ``REQUIRE_SERVICES=1``, when it fails them instead.
    """
    problem = rabbitmq.probe()
    if problem is None and shutil.which("rabbitmqctl") is None:
        problem = "rabbitmqctl is not on PATH (it creates the test vhost)"
    if problem is not None:
        _unavailable(problem)
    with ExitStack() as stack:
        try:
            url = stack.enter_context(rabbitmq.fresh_vhost("wecom-test"))
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"rabbitmqctl could not create the test vhost: {exc}")
        yield url


@pytest.fixture(scope="module")
def module_amqp_url(amqp_url: str) -> Iterator[str]:
    """A vhost of the test module's own: the durable queues its services declare die with it
    instead of collecting other modules' events for the rest of the session."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    with rabbitmq.fresh_vhost("wecom-module") as url:
        yield url
