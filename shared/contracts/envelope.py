"""The event envelope every event travels in, the base of every typed payload, and the one way
to read an envelope off the bus."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.errors import InvalidRequest, describe_validation

SCHEMA_VERSION = 1

RawFields = dict[str, Any]
"""XML fields as received: text leaves are ``str``; repeated elements become lists; nested
elements become dicts."""

RequiredText = Annotated[str, StringConstraints(min_length=1)]
"""A required text field of a payload: an empty value would make the event meaningless."""


class EventEnvelope(BaseModel):
    """Every event on ``wecom.events``; its routing key is ``type``."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True
    )

    id: str = Field(
        description="sha256 hex of receive id + decrypted plaintext (callbacks), else a uuid"
    )
    type: str = Field(description="event type, e.g. command.create_auth, data.message.text")
    schema_version: int = Field(SCHEMA_VERSION, alias="schema")
    suite_id: str
    corp_id: str | None = None
    occurred_at: datetime = Field(description="from CreateTime/TimeStamp, UTC")
    received_at: datetime
    payload: dict[str, Any] = Field(description="typed fields of this event type, snake_case")
    raw: RawFields = Field(default_factory=dict, description="every XML field as received")


class Payload(BaseModel):
    """Base of every typed payload: immutable, and tolerant of fields added later."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def read_envelope(body: bytes) -> EventEnvelope:
    """The event envelope of a message off the bus.

    Raises:
        InvalidRequest: not an envelope; the message names the fields, never their values.
    """
    try:
        return EventEnvelope.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(f"not an event envelope: {describe_validation(exc)}") from None
