"""aiohttp pieces every HTTP service shares: the error middleware, an access logger that
never logs query strings, security headers, a scrubbed aiohttp error log, the
health/readiness/metrics routes, and a server component."""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import structlog
from aiohttp import web, web_response
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry

from shared.errors import ConfigurationError, RequestTimeout, ServiceError
from shared.lifecycle import Readiness
from shared.metrics import render_metrics

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVER_HEADER: Final = "wecom-suite"
# aiohttp writes "Python/3.x aiohttp/3.y" into every response's Server header, including the
# 400 its protocol layer answers to a malformed request before any application code runs;
# the module constant it reads is the only hook that reaches that path too. A version helps
# an attacker pick exploits and helps nobody else.
web_response.SERVER_SOFTWARE = SERVER_HEADER  # type: ignore[attr-defined]

# Pages may load only what they carry inline (by hash) or from this origin; no framing.
_CSP_BASE: Final = (
    "default-src 'none'; img-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# Our own rendered pages (every value html-escaped), not input: the inline blocks to hash.
_INLINE_BLOCK = re.compile(rb"<(script|style)>(.*?)</\1>", re.DOTALL)
_SCRIPT_SRC = re.compile(rb'<script src="(https://[^"/]+)/')


def content_security_policy(html: bytes) -> str:
    """A restrictive CSP for one of our HTML pages: its inline ``<style>``/``<script>`` blocks
    allowed by their SHA-256, external scripts only from the origins the page names."""
    sources: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for kind, block in _INLINE_BLOCK.findall(html):
        digest = base64.b64encode(hashlib.sha256(block).digest()).decode("ascii")
        sources[kind].append(f"'sha256-{digest}'")
    sources[b"script"].extend(origin.decode("ascii") for origin in _SCRIPT_SRC.findall(html))
    policy = _CSP_BASE
    for kind, allowed in sources.items():
        if allowed:
            policy += f"; {kind.decode()}-src {' '.join(dict.fromkeys(allowed))}"
    return policy


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    if response.content_type != "text/html":
        return
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if "Content-Security-Policy" not in headers and isinstance(response, web.Response):
        body = response.body
        html = body if isinstance(body, bytes) else b""
        headers["Content-Security-Policy"] = content_security_policy(html)


def add_security_headers(app: web.Application) -> None:
    """Every response says ``nosniff``; every HTML page gets a restrictive CSP (inline blocks
    by hash, ``frame-ancestors 'none'``), ``X-Frame-Options: DENY`` and no referrer."""
    app.on_response_prepare.append(_security_headers)


class ScrubbedServerLog(logging.Filter):
    """Keeps aiohttp's protocol-layer error log free of what a malformed request carried.

    aiohttp logs a request it cannot parse with the exception, whose message quotes the
    offending bytes: an over-long request line with its ``?auth_code=…``, a header with its
    cookie. The record keeps who and what kind of error, never the bytes; a malformed request
    from the internet is the client's fault, so it is a warning, not an error.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {type(exc).__name__} (HTTP {exc.code})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_SERVER_LOG_FILTER: Final = ScrubbedServerLog()

# Answered to a connection over the cap, without reading a byte of its request.
_BUSY_ANSWER: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
    b"Retry-After: 1\r\n\r\n"
)


async def read_body_within(read: Awaitable[bytes], timeout_s: float) -> bytes:
    """Await a request body read, giving a client that trickles it ``timeout_s`` in all.

    Raises:
        RequestTimeout: (408) the body did not arrive in time.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await read
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None


class _Busy(asyncio.Protocol):
    """A connection over the cap: told 503 and closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(_BUSY_ANSWER)
        transport.close()


class _CappedTCPSite(web.BaseSite):
    """A TCP site that serves at most ``max_connections`` connections at once.

    aiohttp has no such cap; each open connection costs memory and a task, and a client that
    opens thousands (idle or trickling) would starve everyone else.
    """

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, *, max_connections: int
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._max_connections = max_connections

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:  # pragma: no cover - AppRunner.setup() made it
            raise RuntimeError("the runner is not set up")
        cap = self._max_connections

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= cap:
                log.warning("http_connection_refused", reason="too_many_connections", cap=cap)
                return _Busy()
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, reuse_address=True
        )


def error_body(status: int, code: str, message: str) -> web.Response:
    """The one error shape of every HTTP API: ``{"error": {"code", "message"}}``."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to the public error shape; a stack trace never reaches a response."""
    try:
        return await handler(request)
    except ServiceError as exc:
        return error_body(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = error_body(exc.status, code, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return error_body(500, "internal_error", "internal error")


class AccessLogger(AbstractAccessLogger):
    """One structured line per request: method, path (no query: it can carry codes),
    status, duration. Successful probes of /healthz, /readyz and /metrics log at debug."""

    _quiet_paths = frozenset({"/healthz", "/readyz", "/metrics"})

    @property
    def enabled(self) -> bool:
        # aiohttp skips the call when False: no cost per request unless info is logged.
        return bool(log.is_enabled_for(logging.INFO))

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        level = "debug" if request.path in self._quiet_paths and response.status < 400 else "info"
        getattr(log, level)(
            "http_request",
            method=request.method,
            path=request.path,
            status=response.status,
            duration_ms=round(time * 1000, 2),
        )


def add_health_routes(
    app: web.Application, readiness: Readiness, registry: CollectorRegistry
) -> None:
    """``/healthz`` (the process answers), ``/readyz`` (dependencies up), ``/metrics``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = readiness.status()
        ready = all(checks.values())
        return web.json_response(
            {
                "status": "ready" if ready else "not_ready",
                "checks": checks,
                "sandbox_mode": readiness.sandbox_mode,
            },
            status=200 if ready else 503,
        )

    async def metrics(_: web.Request) -> web.Response:
        body, content_type = render_metrics(registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


class HttpBinding(Protocol):
    """The ``HTTP_*`` settings a server is bound and bounded by (``HttpSettings``)."""

    @property
    def http_host(self) -> str: ...

    @property
    def http_port(self) -> int: ...

    @property
    def http_header_timeout_s(self) -> float: ...

    @property
    def http_max_connections(self) -> int: ...


def server_for(app: web.Application, settings: HttpBinding, *, name: str) -> HttpServer:
    """The server for ``app`` bound and bounded as ``settings`` (``HTTP_*``) say."""
    return HttpServer(
        app,
        settings.http_host,
        settings.http_port,
        name=name,
        header_timeout_s=settings.http_header_timeout_s,
        max_connections=settings.http_max_connections,
    )


class HttpServer:
    """A lifecycle component serving an aiohttp application on host:port.

    ``stop()`` stops accepting connections, lets in-flight requests finish within
    ``shutdown_timeout`` and runs the application's cleanup. An address that cannot be bound
    (in use, privileged, not this machine's) is a ``ConfigurationError`` naming
    ``port_setting``, the variable to change. ``port`` 0 binds a free port; :attr:`port`
    is the one bound once started.
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        name: str = "http",
        shutdown_timeout: float = 10.0,
        header_timeout_s: float = 10.0,
        max_connections: int = 1024,
        port_setting: str = "HTTP_PORT",
    ) -> None:
        self.name = name
        self._port_setting = port_setting
        self._app = app
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._header_timeout_s = header_timeout_s
        self._max_connections = max_connections
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        server_log = logging.getLogger("aiohttp.server")
        if _SERVER_LOG_FILTER not in server_log.filters:
            server_log.addFilter(_SERVER_LOG_FILTER)
        runner = web.AppRunner(
            self._app,
            access_log_class=AccessLogger,
            shutdown_timeout=self._shutdown_timeout,
            handle_signals=False,
            # aiohttp closes a connection that has not delivered a complete request line and
            # headers this long after it opened (or after the previous answer): a client
            # trickling its headers (slowloris) is cut off here. Bodies have their own
            # timeout where they are read (read_body_within).
            keepalive_timeout=self._header_timeout_s,
        )
        await runner.setup()
        self._runner = runner
        site = _CappedTCPSite(runner, self._host, self._port, max_connections=self._max_connections)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            self._runner = None
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                raise
            # A setting to change, not a crash: one line naming the variable (exit 2).
            raise ConfigurationError(
                f"{self._port_setting}: cannot listen on {self._host}:{self._port} "
                f"({_BIND_PROBLEMS[exc.errno]})"
            ) from None
        self.port = _bound_port(runner) or self._port
        log.info("http_listening", host=self._host, port=self.port, server=self.name)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            started = time.monotonic()
            await runner.cleanup()
            log.info("http_stopped", server=self.name, seconds=round(time.monotonic() - started, 3))


_BIND_PROBLEMS: Final = {
    errno.EADDRINUSE: "the port is already in use; stop what uses it or choose another port",
    errno.EACCES: "permission denied; ports below 1024 need privileges",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's",
}


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
