"""The local RabbitMQ for the benchmarks: a throw-away vhost, and stopping/starting the broker.

Benchmarks run in a vhost of their own (created with ``rabbitmqctl``, deleted after), so they
never touch another deployment's queues. The helpers are the tests' own
(``tests/support/rabbitmq.py``), so both drive the broker the same way.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager

from tests.support.rabbitmq import fresh_vhost, probe, stopped

__all__ = ["stopped", "unavailable", "vhost"]


def unavailable() -> str | None:
    """None when the benchmarks can use the local broker, else why not."""
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH"
    return probe()


def vhost() -> AbstractContextManager[str]:
    """The AMQP URL of a fresh benchmark vhost, deleted when the block ends."""
    return fresh_vhost("wecom-bench")
