"""Public, well-known credentials of sandbox mode (no ``WECOM_SUITE_ID`` configured).

They pair the services with the bundled WeCom simulator and are printed in the docs on
purpose: sandbox mode handles no real data. With real credentials none of these is used.
"""

from __future__ import annotations

SANDBOX_SUITE_ID = "wwsandbox0000000001"
SANDBOX_SUITE_SECRET = "sandbox-suite-secret"  # noqa: S105 -- public sandbox value
SANDBOX_TOKEN = "sandboxToken"  # noqa: S105 -- public sandbox value
SANDBOX_AES_KEY = "c2FuZGJveEtleTAxMjM0NTY3ODlhYmNkZWZnaGlqa2w"
SANDBOX_PROVIDER_CORPID = "wwsandboxprovider01"
SANDBOX_PROVIDER_SECRET = "sandbox-provider-secret"  # noqa: S105 -- public sandbox value
# Where the bundled simulator listens by default (SIM_HTTP_PORT 8081): the sandbox's WeCom.
SANDBOX_API_BASE = "http://127.0.0.1:8081"
