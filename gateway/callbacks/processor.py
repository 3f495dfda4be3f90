"""Pure callback logic: authenticate, decrypt, apply the receive-id policy, build the event.

No aiohttp or bus imports: every rule here is unit-tested with plain values. The order of
checks is fixed and documented in docs/gateway.md: parameters, signature, timestamp
window, ciphertext, plaintext XML, receive id, normalisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from pydantic_core import to_json

from shared.contracts import SCHEMA_VERSION, EventEnvelope
from shared.wecom.crypto import CallbackCipher, verify_signature
from shared.wecom.errors import (
    CallbackError,
    MissingEncryptError,
    MissingParameterError,
    ReceiveIdError,
    StaleTimestampError,
)
from shared.wecom.events import Route, normalize_callback
from shared.wecom.xml import parse_envelope, parse_xml

ReceiveIdKind = Literal[
    "empty", "suite_id", "provider_corp_id", "message_corp_id", "listed", "unlisted"
]

_MAX_PARAM_LEN = 128
_MAX_ECHOSTR_LEN = 1024


class CallbackParams(NamedTuple):
    """The signed query parameters of every callback request (a named tuple: one is built
    per callback, and a frozen dataclass pays an ``object.__setattr__`` per field)."""

    signature: str
    timestamp: str
    nonce: str

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> CallbackParams:
        """Read and sanity-check ``msg_signature``, ``timestamp`` and ``nonce``.

        Raises:
            MissingParameterError: one is absent, empty, too long, or the timestamp is not
                a whole number of seconds.
        """
        signature = _required(query, "msg_signature")
        timestamp = _required(query, "timestamp")
        nonce = _required(query, "nonce")
        if not timestamp.isascii() or not timestamp.isdigit():
            raise MissingParameterError("query parameter timestamp must be whole seconds")
        return cls(signature, timestamp, nonce)


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name, "")
    if not value or len(value) > _MAX_PARAM_LEN:
        raise MissingParameterError(f"query parameter {name} is missing or too long")
    return value


@dataclass(frozen=True, slots=True)
class ReceiveIdPolicy:
    """Which receive ids a decrypted callback may carry (design.md, protocol doc §2.4).

    Default (``WECOM_RECEIVE_IDS`` unset): the empty id of an individual developer's app,
    the SuiteID and the provider CorpID; on the data URL also the CorpID the message itself
    names. An explicit list replaces that set; ``-`` stands for the empty id, ``@corp`` for
    "the CorpID the data message names" and ``*`` for any id (log only).

    URL verification is lenient under the default policy: which id WeCom uses there for
    individual-developer apps is an open question (protocol doc §15.1), and refusing the
    handshake would stop a developer from saving the callback URL at all. The id seen is
    logged and counted either way; an explicit list is enforced on verification too.
    """

    suite_id: str
    provider_corp_id: str | None
    listed: frozenset[str]
    allow_message_corp: bool
    allow_any: bool
    explicit: bool

    @classmethod
    def from_setting(
        cls, value: str | None, *, suite_id: str, provider_corp_id: str | None
    ) -> ReceiveIdPolicy:
        if value is None or not value.strip():
            default = {"", suite_id} | ({provider_corp_id} if provider_corp_id else set())
            return cls(suite_id, provider_corp_id, frozenset(default), True, False, False)
        entries = [entry.strip() for entry in value.split(",")]
        listed = frozenset("" if entry == "-" else entry for entry in entries if entry)
        return cls(
            suite_id,
            provider_corp_id,
            listed - {"@corp", "*"},
            allow_message_corp="@corp" in listed,
            allow_any="*" in listed,
            explicit=True,
        )

    def classify(self, receive_id: str, message_corp_id: str | None) -> ReceiveIdKind:
        """Name what ``receive_id`` is, for logs and metrics."""
        if receive_id == "":
            return "empty"
        if receive_id == self.suite_id:
            return "suite_id"
        if receive_id == self.provider_corp_id:
            return "provider_corp_id"
        if message_corp_id is not None and receive_id == message_corp_id:
            return "message_corp_id"
        return "listed" if receive_id in self.listed else "unlisted"

    def check(
        self, route: Route, receive_id: str, message_corp_id: str | None, *, verification: bool
    ) -> ReceiveIdKind:
        """Classify ``receive_id`` and raise :class:`ReceiveIdError` if it is not accepted."""
        kind = self.classify(receive_id, message_corp_id)
        if self.allow_any or receive_id in self.listed:
            return kind
        if kind == "message_corp_id" and route == "data" and self.allow_message_corp:
            return kind
        if verification and not self.explicit:
            return kind
        raise ReceiveIdError()


class AcceptedCallback(NamedTuple):
    """A verified, decrypted, normalised callback, ready to publish.

    The event is kept as the JSON it is published as: building an :class:`EventEnvelope`
    only to serialise it again would validate, per callback, fields this module has just
    made. ``envelope`` reads it back as the model.
    """

    event_id: str
    event_type: str
    received_at: datetime
    body: bytes
    """The :class:`EventEnvelope` as JSON, exactly what ``model_dump_json()`` gives."""
    dedup_key: bytes
    """The first 16 bytes of the id's sha256: 128 bits keep collisions out of reach."""
    receive_id: str
    receive_id_kind: ReceiveIdKind

    @property
    def envelope(self) -> EventEnvelope:
        return EventEnvelope.model_validate_json(self.body)


@dataclass(frozen=True, slots=True)
class VerifiedEcho:
    """A successful URL verification: answer ``echo`` as the body."""

    echo: str
    receive_id: str
    receive_id_kind: ReceiveIdKind


class CallbackProcessor:
    """Turns one callback request into an event, or raises a typed :class:`CallbackError`."""

    def __init__(
        self,
        *,
        token: str,
        cipher: CallbackCipher,
        policy: ReceiveIdPolicy,
        suite_id: str,
        timestamp_window_s: int,
        max_body_bytes: int,
    ) -> None:
        self._token = token
        self._cipher = cipher
        self._policy = policy
        self._suite_id = suite_id
        self._window_s = timestamp_window_s
        self._max_body_bytes = max_body_bytes

    def _authenticate(self, params: CallbackParams, encrypted: str, now: float) -> None:
        verify_signature(self._token, params.timestamp, params.nonce, encrypted, params.signature)
        # Checked after the signature, which covers the timestamp: a replay older than the
        # window is refused even with a valid signature.
        if abs(now - int(params.timestamp)) > self._window_s:
            raise StaleTimestampError()

    def verify_url(
        self, route: Route, params: CallbackParams, echostr: str, *, now: float
    ) -> VerifiedEcho:
        """Authenticate a URL verification and return the decrypted echostr."""
        # yarl decodes a literal '+' in a query as a space; base64 has no spaces, so any
        # space was a '+' WeCom did not percent-encode (protocol doc §2.5).
        echostr = echostr.replace(" ", "+")
        if not echostr or len(echostr) > _MAX_ECHOSTR_LEN:
            raise MissingParameterError("query parameter echostr is missing or too long")
        self._authenticate(params, echostr, now)
        decrypted = self._cipher.decrypt(echostr)
        receive_id = _decode_text(decrypted.receive_id, "receive id")
        kind = self._policy.check(route, receive_id, None, verification=True)
        return VerifiedEcho(_decode_text(decrypted.msg, "echostr"), receive_id, kind)

    def process(
        self, route: Route, params: CallbackParams, body: bytes, *, now: float
    ) -> AcceptedCallback:
        """Authenticate, decrypt and normalise a POSTed callback."""
        outer = parse_envelope(body, max_bytes=self._max_body_bytes)
        encrypted = outer.get("Encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise MissingEncryptError()
        self._authenticate(params, encrypted, now)
        decrypted = self._cipher.decrypt(encrypted)
        raw = parse_xml(decrypted.msg, max_bytes=self._max_body_bytes)
        receive_id = _decode_text(decrypted.receive_id, "receive id")
        message_corp = raw.get("ToUserName") if route == "data" else None
        kind = self._policy.check(
            route,
            receive_id,
            message_corp if isinstance(message_corp, str) else None,
            verification=False,
        )
        received_at = datetime.fromtimestamp(now, UTC)
        event = normalize_callback(route, raw, received_at=received_at)
        # The id hashes exactly what WeCom encrypted: a retry of the same callback (new
        # nonce, new ciphertext) gets the same id, while two distinct callbacks that share
        # sender and second do not -- unlike de-duplication on FromUserName + CreateTime.
        digest = hashlib.sha256(decrypted.receive_id + decrypted.msg).digest()
        event_id = digest.hex()
        # The fields of EventEnvelope in its order, under its aliases, serialised by the same
        # pydantic core as model_dump_json() (tests compare the two on every fixture).
        body = to_json(
            {
                "id": event_id,
                "type": event.type,
                "schema": SCHEMA_VERSION,
                "suite_id": event.suite_id or self._suite_id,
                "corp_id": event.corp_id,
                "occurred_at": event.occurred_at,
                "received_at": received_at,
                "payload": event.payload,
                "raw": event.raw,
            },
            # As the model serialises: a payload float read as nan or inf (a Latitude of
            # "nan") becomes null, not the bare NaN that strict JSON parsers refuse.
            inf_nan_mode="null",
        )
        return AcceptedCallback(
            event_id, event.type, received_at, body, digest[:16], receive_id, kind
        )


def _decode_text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CallbackError(f"the decrypted {what} is not UTF-8") from exc
