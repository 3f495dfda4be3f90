"""``--online``: WeCom's URL verification (GET) against both callback URLs (protocol doc §2.5).

We play WeCom's part with the configured Token and EncodingAESKey: a correctly configured
callback URL answers HTTP 200 with exactly the echo string we encrypted.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from shared.wecom.crypto import CallbackCipher
from shared.wecom.sealing import seal_verification
from wecom_suite.listing.findings import Finding

# WeCom wants the answer within 1 s (§2.5); allow a little more so that a slow first
# connection (DNS, TLS) is reported as slow rather than as unreachable.
DEFAULT_TIMEOUT = 3.0
_BODY_SHOWN = 60


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of one URL verification: ``finding`` is None when the URL answered right."""

    field: str
    url: str
    finding: Finding | None

    @property
    def ok(self) -> bool:
        """True when the URL answered HTTP 200 with exactly the echo string."""
        return self.finding is None


async def _verify_one(
    session: aiohttp.ClientSession, field: str, url: str, token: str, cipher: CallbackCipher
) -> Verification:
    echo = str(secrets.randbelow(10**18) + 10**18)  # a long number, as WeCom sends
    query = seal_verification(cipher, token, echo, "", timestamp=int(time.time()))
    params: dict[str, str | int] = {"url": url}
    try:
        async with session.get(url, params=query, allow_redirects=False) as response:
            body = await response.read()
            status = response.status
    except TimeoutError:
        return Verification(field, url, Finding("callback.verification", field, params, "timeout"))
    except (aiohttp.ClientError, ValueError) as exc:
        params["error"] = type(exc).__name__
        return Verification(field, url, Finding("callback.verification", field, params, "error"))
    if status != 200:
        params["status"] = status
        return Verification(field, url, Finding("callback.verification", field, params, "status"))
    if body != echo.encode():
        params["body"] = body[:_BODY_SHOWN].decode("utf-8", "replace")
        return Verification(field, url, Finding("callback.verification", field, params, "body"))
    return Verification(field, url, None)


async def verify_callback_urls(
    urls: Mapping[str, str],
    token: str,
    encoding_aes_key: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    ca_file: Path | None = None,
) -> list[Verification]:
    """Verify each URL of ``urls`` (field path -> URL) the way WeCom does when it is saved.

    ``ca_file`` adds trusted certificates (a staging server with a private CA); WeCom itself
    only trusts public ones, so a listing for review should pass without it.
    """
    cipher = CallbackCipher(encoding_aes_key)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    ssl_context: ssl.SSLContext | bool = True
    if ca_file is not None:
        ssl_context = ssl.create_default_context(cafile=str(ca_file))
    connector = aiohttp.TCPConnector(ssl=ssl_context)
    async with aiohttp.ClientSession(timeout=client_timeout, connector=connector) as session:
        return list(
            await asyncio.gather(
                *(_verify_one(session, field, url, token, cipher) for field, url in urls.items())
            )
        )
