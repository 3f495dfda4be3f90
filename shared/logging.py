"""The single ``configure_logging()`` and the redaction every log line passes through.

structlog and the standard library (aiohttp, aio-pika) render through one processor chain,
so every stdout line is JSON (or console text on a TTY). Redaction runs last before
rendering, on both paths: secrets never reach a log, even inside an exception message.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Protocol

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

# Keys whose values are secrets or user content, matched on the lower-cased key.
_SENSITIVE_EXACT = frozenset(
    {
        "code",
        "auth_code",
        "content",
        "echostr",
        "plaintext",
        "body",
        "raw",
        "payload",
        "msg",
        "encrypt",
        "authorization",
        "cookie",
        "set_cookie",
        "data_key",
        "session",
    }
)
_SENSITIVE_PARTS = (
    "secret",
    "token",
    "ticket",
    "password",
    "permanent_code",
    "aes_key",
    "api_key",
    "private_key",
    "cookie",
    "content",
)
# Harmless descriptors of a sensitive thing ("token_kind", "ticket_age_s"), and where one is
# kept ("internal_api_key_file"): a newcomer needs that path, and it is not the secret. The
# secret's value stays masked wherever it appears, by the registered values below.
_SAFE_SUFFIXES = (
    "_kind",
    "_count",
    "_type",
    "_len",
    "_size",
    "_age_s",
    "_expires_at",
    "_id",
    "_file",
    "_path",
)
# An EncodingAESKey has this exact shape; mask it wherever it appears in text.
_AES_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{43}(?![A-Za-z0-9])")


def is_sensitive_key(key: str) -> bool:
    """True if values logged under ``key`` must be masked."""
    lowered = key.lower()
    if lowered in _SENSITIVE_EXACT:
        return True
    if lowered.endswith(_SAFE_SUFFIXES):
        return False
    return any(part in lowered for part in _SENSITIVE_PARTS)


class SecretRedactor:
    """structlog processor: masks sensitive keys and known secret values anywhere.

    Known values (configured secrets, tokens fetched at run time) are registered with
    :meth:`register`; any string containing one has it replaced, so a secret that slips into
    an exception message or an event name is still masked.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.register(secret)

    def register(self, secret: str) -> None:
        """Mask ``secret`` in every later log line (values shorter than 6 chars are ignored:
        masking them would mangle ordinary words)."""
        if len(secret) >= 6:
            self._secrets.add(secret)

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        return self._clean_mapping(event_dict)

    def _clean_mapping(self, data: MutableMapping[str, Any]) -> EventDict:
        cleaned: EventDict = {}
        for key, value in data.items():
            if value is not None and key != "event" and is_sensitive_key(str(key)):
                cleaned[key] = REDACTED
            else:
                cleaned[key] = self._clean_value(value)
        return cleaned

    def _clean_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._clean_text(value)
        if isinstance(value, Mapping):
            return self._clean_mapping(dict(value))
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean_value(item) for item in value]
        return value

    def _clean_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _AES_KEY_SHAPE.sub(REDACTED, text)


_redactor = SecretRedactor()


def register_secret(secret: str) -> None:
    """Mask ``secret`` in every log line from now on (process-wide)."""
    _redactor.register(secret)


def _shared_processors(redactor: SecretRedactor, *, json: bool) -> list[Processor]:
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json:
        # Locals stay out of tracebacks: a frame's variables can hold a decrypted message, a
        # token or a secret, and redaction by key cannot see inside their repr.
        processors.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        processors.append(structlog.processors.format_exc_info)
    processors.append(redactor)
    return processors


def configure_logging(
    level: str = "info",
    fmt: str | None = None,
    *,
    service: str,
    version: str,
    secrets: Iterable[str] = (),
    cache_loggers: bool = True,
) -> None:
    """Configure structlog and the standard library once per process.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        fmt: ``json`` or ``console``; ``None`` picks console on a TTY, JSON otherwise.
        service: bound into every line as ``service``.
        version: bound into every line as ``version``.
        secrets: values to mask wherever they appear (configured secrets).
        cache_loggers: cache bound loggers on first use (off in tests that reconfigure).
    """
    for secret in secrets:
        _redactor.register(secret)
    use_json = fmt == "json" or (fmt is None and not sys.stdout.isatty())
    shared = _shared_processors(_redactor, json=use_json)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = StdoutHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric_level = logging.getLevelName(level.upper())
    root.setLevel(numeric_level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=cache_loggers,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service, version=version)


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines to stdout; when the reader of stdout has gone (``wecom-suite run | head``),
    the process stops as on SIGTERM, quietly, instead of printing a logging error per line."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib's name
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            _reader_gone()
            return
        super().handleError(record)


def _reader_gone() -> None:
    """Send what is still written to nowhere and ask the process to stop gracefully."""
    silence_stdout()
    os.kill(os.getpid(), signal.SIGTERM)


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered or written after its reader
    went away (a closed pipe) is dropped instead of raising at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class LogConfig(Protocol):
    """What :func:`configure_service_logging` reads (``shared.settings.LogSettings``)."""

    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str | None: ...


def configure_service_logging(
    settings: LogConfig, service: str, *, also: Iterable[object] = ()
) -> None:
    """:func:`configure_logging` from a service's ``LOG_LEVEL``/``LOG_FORMAT`` settings, with
    the package version stamped on every line.

    Every secret ``settings`` (and each model in ``also``) holds is masked, as
    :func:`shared.settings.secret_values` finds them: no service lists its own.
    """
    # Both imported here: this module stays import-light (no pydantic) for its other users.
    from shared.settings import secret_values  # noqa: PLC0415
    from shared.version import package_version  # noqa: PLC0415

    configure_logging(
        settings.log_level,
        settings.log_format,
        service=service,
        version=package_version(),
        secrets=secret_values(settings, *also),
    )
