"""Sessions that can end server-side: each sign-in has its own id in the signed cookie, and
the ``rpc.auth`` session ops are validated like every other op."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.web.oauth_codecs import (
    SESSION_KEY_PURPOSE,
    Identity,
    NotSignedIn,
    SessionCodec,
    SignedCodec,
    derive_key,
)
from shared.contracts import AuthRequest, Installation, SessionStatus

KEY = bytes(range(32))
NOW = 1_700_000_000.0
SID = "A" * 24


def test_each_sign_in_gets_its_own_session_id() -> None:
    """Two sign-ins of one member are two sessions: signing out of one leaves the other."""
    codec = SessionCodec(KEY, ttl_s=3600)
    identity = Identity("wwcorp", "alice", None)
    first, first_value = codec.issue(identity, now=NOW)
    second, _ = codec.issue(identity, now=NOW)
    assert first.sid != second.sid
    assert len(first.sid) == 24
    assert codec.read(first_value, now=NOW).sid == first.sid


def test_a_cookie_without_a_session_id_is_refused() -> None:
    """A validly signed cookie from before session ids (it could never be signed out of)."""
    signer = SignedCodec(derive_key(KEY, SESSION_KEY_PURPOSE))
    legacy = signer.encode({"corp_id": "wwcorp", "user_id": "alice", "exp": int(NOW) + 60})
    with pytest.raises(NotSignedIn):
        SessionCodec(KEY, ttl_s=3600).read(legacy, now=NOW)


@pytest.mark.parametrize(
    "fields",
    [
        {"op": "session", "corp_id": "wwcorp"},
        {"op": "session", "session_id": SID},
        {"op": "end_session", "session_id": SID},
        {"op": "end_session", "expires_at": 1},
        {"op": "session", "corp_id": "wwcorp", "session_id": "short"},
    ],
)
def test_session_ops_need_their_fields(fields: dict[str, object]) -> None:
    """session needs corp_id and session_id, end_session session_id and expires_at."""
    with pytest.raises(ValidationError):
        AuthRequest.model_validate(fields)


def installation(status: str) -> Installation:
    """An installation of ``wwcorp`` in ``status``."""
    return Installation.model_validate({"corp_id": "wwcorp", "status": status})


@pytest.mark.parametrize(
    ("ended", "status", "over"),
    [
        (False, "active", False),
        (True, "active", True),
        (False, "revoked", True),
        (False, "refused", True),
        (False, None, False),
    ],
)
def test_a_session_is_over_once_signed_out_or_uninstalled(
    ended: bool, status: str | None, over: bool
) -> None:
    """Over: signed out, or the corp's installation not active; no record yet keeps it."""
    found = None if status is None else installation(status)
    assert SessionStatus(ended=ended, installation=found).over is over
