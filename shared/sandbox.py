"""Public, well-known credentials of sandbox mode (no ``WECOM_SUITE_ID`` configured), and
the one way a process says it runs on them.

They pair the services with the bundled WeCom simulator and are printed in the docs on
purpose: sandbox mode handles no real data. With real credentials none of these is used.
"""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, Gauge

from shared.lifecycle import Readiness

SANDBOX_SUITE_ID = "wwsandbox0000000001"
SANDBOX_SUITE_SECRET = "sandbox-suite-secret"  # noqa: S105 -- public sandbox value
SANDBOX_TOKEN = "sandboxToken"  # noqa: S105 -- public sandbox value
SANDBOX_AES_KEY = "c2FuZGJveEtleTAxMjM0NTY3ODlhYmNkZWZnaGlqa2w"
SANDBOX_PROVIDER_CORPID = "wwsandboxprovider01"
SANDBOX_PROVIDER_SECRET = "sandbox-provider-secret"  # noqa: S105 -- public sandbox value
# Where the bundled simulator listens by default (SIM_HTTP_PORT 8081): the sandbox's WeCom.
SANDBOX_API_BASE = "http://127.0.0.1:8081"


def mark_sandbox_mode(
    service: str,
    *,
    sandbox: bool,
    registry: CollectorRegistry,
    readiness: Readiness | None = None,
) -> None:
    """Say whether ``service`` runs on the public sandbox keys: ``wecom_sandbox_mode`` on
    ``/metrics`` (1 or 0), ``sandbox_mode`` on ``/readyz``, and a warning at start if so.

    Call it once per registry, after logging is configured: anyone who can read these docs
    can sign callbacks with the sandbox keys, so an operator must be able to see it.

    Args:
        service: the process's name, for the log line.
        sandbox: whether the sandbox keys are in use.
        registry: the registry ``/metrics`` renders.
        readiness: the ``/readyz`` checks, if the process has them.
    """
    gauge = Gauge(
        "wecom_sandbox_mode",
        "1 when this process runs on the public sandbox credentials (no WECOM_SUITE_ID).",
        registry=registry,
    )
    gauge.set(1 if sandbox else 0)
    if readiness is not None:
        readiness.sandbox_mode = sandbox
    if sandbox:
        structlog.get_logger(__name__).warning(
            "sandbox_mode_public_keys",
            service=service,
            suite_id=SANDBOX_SUITE_ID,
            operator_action="not for production: anyone can sign callbacks with these public "
            "keys; set WECOM_SUITE_ID and the app's secrets (docs/configuration.md)",
        )
