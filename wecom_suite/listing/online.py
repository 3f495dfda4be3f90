"""``--online``: WeCom's URL verification (GET) against both callback URLs (protocol doc §2.5).

We play WeCom's part with the configured Token and EncodingAESKey: a correctly configured
callback URL answers HTTP 200 with exactly the echo string we encrypted.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

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
        detail = _describe_failure(exc, params)
        return Verification(field, url, Finding("callback.verification", field, params, detail))
    if status != 200:
        params["status"] = status
        return Verification(field, url, Finding("callback.verification", field, params, "status"))
    if body != echo.encode():
        params["body"] = body[:_BODY_SHOWN].decode("utf-8", "replace")
        return Verification(field, url, Finding("callback.verification", field, params, "body"))
    return Verification(field, url, None)


def _describe_failure(exc: aiohttp.ClientError | ValueError, params: dict[str, str | int]) -> str:
    """Which message explains ``exc`` in words (the finding's detail); fills its params."""
    for kind, detail, words in _FAILURES:
        if isinstance(exc, kind):
            params.update(words(exc))
            return detail
    # Anything else aiohttp raises while reading the answer (a malformed response, …).
    params["error"] = type(exc).__name__
    return "error"


def _certificate_reason(exc: aiohttp.ClientConnectorCertificateError) -> str:
    error = exc.certificate_error
    reason = getattr(error, "verify_message", None) or getattr(error, "reason", None)
    return str(reason or "not trusted")


# First match wins: aiohttp's certificate, TLS and DNS errors are kinds of connection errors.
_FAILURES: Final[tuple[tuple[type[Exception], str, Callable[[Any], dict[str, str | int]]], ...]] = (
    (
        aiohttp.ClientConnectorCertificateError,
        "certificate",
        lambda exc: {"host": exc.host, "reason": _certificate_reason(exc)},
    ),
    (aiohttp.ClientSSLError, "tls", lambda exc: {"host": exc.host}),
    (aiohttp.ClientConnectorDNSError, "dns", lambda exc: {"host": exc.host}),
    (
        aiohttp.ClientConnectorError,
        "connect",
        lambda exc: {"host": exc.host, "port": exc.port, "reason": exc.strerror or "refused"},
    ),
    (aiohttp.ServerDisconnectedError, "disconnected", lambda _: {}),
    (aiohttp.InvalidURL, "url", lambda _: {}),
    (ValueError, "url", lambda _: {}),
)


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
