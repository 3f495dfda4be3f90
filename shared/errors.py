"""The error hierarchy every service raises on purpose.

Each class carries a stable snake_case ``code``, the HTTP ``status`` it maps to when it reaches
a client, and whether a retry can help (``retryable``). Edges translate: the gateway turns a
``ServiceError`` into ``{"error": {"code", "message"}}``; a bus consumer turns ``retryable``
into a delayed retry and anything else into a dead letter.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationError


class ServiceError(Exception):
    """Base class for every error raised on purpose."""

    code: ClassVar[str] = "service_error"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    reason: ClassVar[str] = "service error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.reason
        super().__init__(self.message)

    def to_json(self) -> dict[str, dict[str, str]]:
        """The public error body shared by every HTTP API."""
        return {"error": {"code": self.code, "message": self.message}}


class InvalidRequest(ServiceError):
    code = "invalid_request"
    status = 400
    reason = "the request is malformed"


class Unauthorized(ServiceError):
    code = "unauthorized"
    status = 401
    reason = "authentication required"


class Forbidden(ServiceError):
    code = "forbidden"
    status = 403
    reason = "not allowed"


class NotFound(ServiceError):
    code = "not_found"
    status = 404
    reason = "not found"


class Conflict(ServiceError):
    code = "conflict"
    status = 409
    reason = "conflicts with the current state"


class RequestTimeout(ServiceError):
    code = "request_timeout"
    status = 408
    reason = "the request body did not arrive in time"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    status = 413
    reason = "the request body is too large"


class UpstreamError(ServiceError):
    code = "upstream_error"
    status = 502
    retryable = True
    reason = "an upstream service failed"


class Unavailable(ServiceError):
    code = "unavailable"
    status = 503
    retryable = True
    reason = "temporarily unavailable; retry later"


class ConfigurationError(ServiceError):
    """A setting is missing or malformed; raised at start-up, never at request time."""

    code = "configuration_error"
    reason = "invalid configuration"


def describe_validation(exc: ValidationError, *, most: int = 5) -> str:
    """Which fields of a message are wrong and why, never their values (a value may be a
    token, a code or message content)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:most]:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
