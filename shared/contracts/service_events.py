"""The events our own services publish (``install.redirect``, ``auth.*``): their payloads, and
:func:`service_event`, the one way every producer wraps a payload in an envelope.

``notify.result``'s payload is :class:`shared.notify.NotifyResult`; it is built the same way.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import event_types
from shared.contracts.envelope import EventEnvelope, Payload, RequiredText

# auth.* events come from auth_service. A permanent code never travels in clear: the bus stores
# messages on disk, so it is sealed with DATA_KEY (AES-GCM, shared.storage.crypto.SecretBox)
# under the context :func:`permanent_code_context` -- only services holding DATA_KEY can open
# it, and a sealed code copied to another corp's event fails to open.


def permanent_code_context(corp_id: str) -> str:
    """The associated data a permanent code is sealed under on the bus."""
    return f"bus/permanent_code/{corp_id}"


class _ServicePayload(Payload):
    model_config = ConfigDict(
        frozen=True, extra="ignore", json_schema_serialization_defaults_required=True
    )


class AuthGrantedPayload(_ServicePayload):
    """``auth.granted``: a corp installed the app (or re-installed it: a new permanent code)."""

    corp_id: RequiredText
    corp_name: str | None = None
    agent_id: int | None = None
    permanent_code_sealed: RequiredText = Field(
        description="the permanent code, AES-GCM sealed with DATA_KEY (never in clear)"
    )
    test: bool = Field(False, description="a test install (via /install?test=1 or TEST_CORP_IDS)")
    installer_user_id: str | None = None
    installer_open_userid: str | None = None
    auth_mode: int | None = Field(None, description="WeCom's auth_mode; 1 = member authorisation")
    app_state: str | None = Field(None, description="?state= of the GET /install it came from")


class AuthChangedPayload(_ServicePayload):
    """``auth.changed``: the grant changed (change_auth, members, or a reset permanent code)."""

    corp_id: RequiredText
    corp_name: str | None = None
    agent_id: int | None = None
    members: list[str] = Field(default_factory=list, description="members who have the app")
    permanent_code_sealed: str | None = Field(
        None, description="set only when the permanent code itself changed"
    )


class AuthRevokedPayload(_ServicePayload):
    """``auth.revoked``: the corp uninstalled the app; its permanent code is void."""

    corp_id: RequiredText
    reason: str | None = None


class AuthLostPayload(_ServicePayload):
    """``auth.lost``: WeCom consumed an auth code whose exchange result was lost (a crash
    after WeCom answered, before the result was stored): the permanent code cannot be fetched
    again, so the member must install the app again."""

    corp_id: str | None = Field(
        None, description="the corp, when known (WeCom's answer that named it was lost)"
    )
    reason: str
    app_state: str | None = Field(
        None, description="the caller's own ?state= of the install that was lost"
    )


# installs_closed: INSTALLS_OPEN=false, the app is offline and takes no new corps or members.
InstallLimit = Literal["corps", "users", "test_accounts", "test_and_released", "installs_closed"]


class AuthRejectedPayload(_ServicePayload):
    """``auth.rejected``: an install (or one member of it) was refused by an install limit."""

    corp_id: RequiredText
    corp_name: str | None = None
    user_id: str | None = Field(None, description="the member refused, when only one was")
    test: bool = False
    limit: InstallLimit = Field(description="which limit refused it")
    reason: str = Field(description="a sentence saying which limit and its value")
    app_state: str | None = Field(None, description="?state= of the GET /install it came from")


class QuotaWarningPayload(_ServicePayload):
    """``auth.quota_warning``: an install limit reached 80 % or 100 % of its value."""

    limit: Literal["corps", "users", "test_accounts"]
    used: int
    max: int
    level: Literal[80, 100] = Field(description="percent of the limit now used")


class InstallRedirectPayload(_ServicePayload):
    """``install.redirect``: the browser came back from WeCom's install page with an auth code
    (published by the gateway's ``/install/complete``; protocol doc §8.4)."""

    auth_code: RequiredText
    state: str | None = None
    state_valid: bool = Field(
        False, description="the state was ours: signed by this deployment and not expired"
    )
    test: bool = Field(False, description="the signed state asked for a test install")
    app_state: str | None = Field(
        None, description="the caller's own ?state= of GET /install, carried through WeCom"
    )


SERVICE_EVENT_MODELS: dict[str, type[Payload]] = {
    event_types.AUTH_GRANTED: AuthGrantedPayload,
    event_types.AUTH_CHANGED: AuthChangedPayload,
    event_types.AUTH_REVOKED: AuthRevokedPayload,
    event_types.AUTH_LOST: AuthLostPayload,
    event_types.AUTH_REJECTED: AuthRejectedPayload,
    event_types.AUTH_QUOTA_WARNING: QuotaWarningPayload,
    event_types.INSTALL_REDIRECT: InstallRedirectPayload,
}
"""The payload model of every event type our services publish (not from a callback)."""


def stable_event_id(event_type: str, *causes: str | None) -> str:
    """The id of a service event, derived from what caused it.

    A redelivered cause (or a retry after a crash) republishes the same id, which consumers
    de-duplicate on.

    Args:
        event_type: the type of the event published.
        causes: what makes this event unique within its type, e.g. the id of the event that
            caused it and the corp; ``None`` counts as the text ``"None"``.

    Returns:
        The sha256 hex of the type and the causes, joined by newlines.
    """
    text = "\n".join([event_type, *(str(cause) for cause in causes)])
    return hashlib.sha256(text.encode()).hexdigest()


def service_event(
    event_type: str,
    payload: BaseModel,
    *,
    event_id: str,
    suite_id: str,
    corp_id: str | None,
    occurred_at: datetime,
    received_at: datetime | None = None,
) -> EventEnvelope:
    """The envelope of an event one of our services publishes (not from a callback).

    Publish it with :func:`shared.bus.events.publish_event`, which gives every event the same
    message properties.

    Args:
        event_type: one of :mod:`shared.contracts.event_types`, e.g. ``AUTH_GRANTED``.
        payload: the event's payload model; it travels as its JSON dump.
        event_id: derived from the cause (:func:`stable_event_id`) so that a republication
            is recognised as the same event.
        suite_id: the suite the event belongs to.
        corp_id: the corp it concerns, ``None`` for a suite-wide event.
        occurred_at: when it happened (UTC).
        received_at: when the service learnt of it; ``occurred_at`` when not given.

    Returns:
        The envelope, with no ``raw`` fields (those belong to callbacks).
    """
    return EventEnvelope(
        id=event_id,
        type=event_type,
        suite_id=suite_id,
        corp_id=corp_id,
        occurred_at=occurred_at,
        received_at=occurred_at if received_at is None else received_at,
        payload=payload.model_dump(mode="json"),
    )
