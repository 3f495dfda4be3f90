"""Normalisation of a decrypted callback into an event: its type, typed payload, corp and time.

Types are ``command.<InfoType>``, ``data.message.<MsgType>`` and ``data.event.<Event>``, each
name lower-cased and reduced to ``[a-z0-9_]`` so that it is a safe AMQP routing key. A name
this module does not know is still an event, under its own name, with the raw fields as payload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from shared.contracts import PAYLOAD_MODELS
from shared.wecom.errors import XmlError

__all__ = ["NormalizedEvent", "Route", "normalize_callback"]

Route = Literal["command", "data"]
"""Which callback URL delivered the body: instruction (指令回调) or data (数据回调)."""

MAX_NAME_LENGTH = 64
"""Longest InfoType/MsgType/Event accepted: keeps every type far below AMQP's 255-byte key."""

_UNSAFE_NAME_CHARS = re.compile(r"[^a-z0-9_]")
_MAX_REPORTED_ERRORS = 3


class NormalizedEvent(NamedTuple):
    """A verified callback, ready to be wrapped in an :class:`~shared.contracts.EventEnvelope`.

    A named tuple rather than a frozen dataclass: one is built per callback, and a frozen
    dataclass pays an ``object.__setattr__`` per field.
    """

    type: str
    """``command.<InfoType>``, ``data.message.<MsgType>`` or ``data.event.<Event>``."""
    payload: dict[str, Any]
    """The typed payload model dumped with ``mode="json"``; for unknown types, the raw fields."""
    corp_id: str | None
    """data: ToUserName; command: AuthCorpId, PaidCorpId or CorpId, whichever is present."""
    suite_id: str | None
    """The SuiteId field, when the body has one."""
    occurred_at: datetime
    """UTC, from CreateTime (data) or TimeStamp (command); the receive time when absent."""
    raw: dict[str, Any]
    """Every field as parsed, for forward compatibility."""


class _Routing(NamedTuple):
    # A tuple rather than a frozen dataclass: one is built per callback, and a frozen
    # dataclass pays an object.__setattr__ per field.
    type: str
    corp_fields: tuple[str, ...]
    time_field: str


def normalize_callback(
    route: Route, raw: dict[str, Any], *, received_at: datetime
) -> NormalizedEvent:
    """Turn the parsed plaintext of a callback into an event.

    Args:
        route: the callback URL that delivered it.
        raw: the decrypted body as returned by :func:`shared.wecom.xml.parse_xml`.
        received_at: when the gateway received it; naive values are taken as UTC.

    Returns:
        The event; its payload is typed when the type is in ``PAYLOAD_MODELS``.

    Raises:
        XmlError: the body names no type (no InfoType; no MsgType, or MsgType ``event``
            without Event), a type name is not text or too long, a known type lacks a
            required field or has a malformed one (the message names the field), or the
            timestamp is not a Unix time.
        ValueError: ``route`` is not a callback route (a programming error).
    """
    router = _ROUTERS.get(route)
    if router is None:
        raise ValueError(f"unknown callback route {route!r}")
    routing = router(raw)
    corp_id = None
    for field in routing.corp_fields:
        corp_id = _optional_text(raw, field)
        if corp_id:
            break
    return NormalizedEvent(
        type=routing.type,
        payload=_typed_payload(routing.type, raw),
        corp_id=corp_id,
        suite_id=_optional_text(raw, "SuiteId"),
        occurred_at=_occurred_at(raw, routing.time_field, received_at),
        raw=raw,
    )


def _route_command(raw: dict[str, Any]) -> _Routing:
    info_type = _type_name(raw, "InfoType")
    if info_type is not None:
        return _Routing(f"command.{info_type}", ("AuthCorpId", "PaidCorpId", "CorpId"), "TimeStamp")
    # change_app_admin reaches the instruction URL shaped as a data event (MsgType=event,
    # Event=change_app_admin, ToUserName=the corp) with no InfoType at all.
    event = _type_name(raw, "Event") if _type_name(raw, "MsgType") == "event" else None
    if event is None:
        raise XmlError("the instruction callback has no InfoType")
    return _Routing(f"command.{event}", ("ToUserName",), "CreateTime")


def _route_data(raw: dict[str, Any]) -> _Routing:
    msg_type = _type_name(raw, "MsgType")
    if msg_type is None:
        raise XmlError("the data callback has no MsgType")
    if msg_type != "event":
        return _Routing(f"data.message.{msg_type}", ("ToUserName",), "CreateTime")
    event = _type_name(raw, "Event")
    if event is None:
        raise XmlError("the data callback event has no Event")
    return _Routing(f"data.event.{event}", ("ToUserName",), "CreateTime")


_ROUTERS: dict[str, Callable[[dict[str, Any]], _Routing]] = {
    "command": _route_command,
    "data": _route_data,
}


def _optional_text(raw: dict[str, Any], field: str) -> str | None:
    """The text of ``field``; ``None`` when it is absent or empty."""
    value = raw.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise XmlError(f"{field} must be a text element")
    return value


def _type_name(raw: dict[str, Any], field: str) -> str | None:
    """``field`` as one segment of an event type: lower-case, ``[a-z0-9_]`` only."""
    value = raw.get(field)
    name = _TYPE_NAMES.get(value) if type(value) is str else None
    if name is not None:
        return name
    value = (_optional_text(raw, field) or "").strip()
    if not value:
        return None
    if len(value) > MAX_NAME_LENGTH:
        raise XmlError(f"{field} is longer than {MAX_NAME_LENGTH} characters")
    # '.', '*' and '#' would add segments or wildcards to the routing key.
    name = _UNSAFE_NAME_CHARS.sub("_", value.lower())
    # Type names repeat (a few dozen kinds), so each is worked out once. The cache is keyed
    # by the text as received and bounded: names also come from outside.
    if len(_TYPE_NAMES) < _TYPE_NAMES_LIMIT:
        _TYPE_NAMES[raw[field]] = name
    return name


_TYPE_NAMES: dict[str, str] = {}
_TYPE_NAMES_LIMIT = 1024


def _typed_payload(event_type: str, raw: dict[str, Any]) -> dict[str, Any]:
    model = PAYLOAD_MODELS.get(event_type)
    if model is None:
        return dict(raw)
    try:
        # What model_validate(raw).model_dump(mode="json") does, minus its Python wrappers.
        payload = model.__pydantic_validator__.validate_python(raw)
    except ValidationError as exc:
        # Raised without the ValidationError, whose text quotes the input values: only the
        # field names and the reasons are reported.
        raise XmlError(f"{event_type}: {_describe(exc)}") from None
    dumped: dict[str, Any] = model.__pydantic_serializer__.to_python(payload, mode="json")
    return dumped


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    reasons = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        field = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            reasons.append(f"{field} is required")
        elif error["type"] == "string_too_short":
            reasons.append(f"{field} is empty")
        else:
            reasons.append(f"{field} is invalid ({error['msg']})")
    return "; ".join(reasons)


def _occurred_at(raw: dict[str, Any], field: str, received_at: datetime) -> datetime:
    # The parser keeps values exactly as sent ("<TimeStamp>\n  1403610513\n</TimeStamp>" in
    # pretty-printed samples): the whitespace around a number is trimmed here, where it
    # becomes one, as pydantic does for the payload's int fields.
    value = (_optional_text(raw, field) or "").strip(" \t\r\n") or None
    if value is None:
        if received_at.tzinfo is None:
            return received_at.replace(tzinfo=UTC)
        return received_at.astimezone(UTC)
    # int() alone would also take signs, underscores and non-ASCII digits.
    if not (value.isascii() and value.isdigit()):
        raise XmlError(f"{field} is not a Unix timestamp")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        raise XmlError(f"{field} is out of range") from None
