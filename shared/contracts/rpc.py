"""The request and reply models of the internal RPC queues: ``rpc.tokens`` and ``rpc.auth``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TokenKind = Literal["suite", "provider", "corp", "jsapi", "agent_jsapi", "pre_auth_code"]
CORP_TOKEN_KINDS: frozenset[str] = frozenset({"corp", "jsapi", "agent_jsapi"})


class TokenRequest(BaseModel):
    """An ``rpc.tokens`` request. ``stale`` is a token the caller saw WeCom reject: the
    service refreshes only if that token is still the current one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TokenKind
    corp_id: str | None = Field(None, min_length=1, max_length=128)
    agent_id: int | None = None
    stale: str | None = Field(None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _corp_needed(self) -> TokenRequest:
        if self.kind in CORP_TOKEN_KINDS and self.corp_id is None:
            raise ValueError(f"corp_id is required for kind {self.kind!r}")
        if self.kind not in CORP_TOKEN_KINDS and self.corp_id is not None:
            raise ValueError(f"corp_id is not used by kind {self.kind!r}")
        return self


class TokenReply(BaseModel):
    """An ``rpc.tokens`` answer: the token (or ticket, or pre_auth_code) and when it expires."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str
    expires_at: datetime


class Installation(BaseModel):
    """One installation as ``rpc.auth`` and ``GET /api/v1/installations`` show it (design.md)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    corp_id: str
    corp_name: str | None = None
    agent_id: int | None = None
    members: list[str] = Field(default_factory=list, description="user ids that installed")
    test: bool = False
    status: Literal["active", "revoked", "refused", "lost"]
    reason: str | None = Field(None, description="why refused or revoked")
    installed_at: datetime | None = None
    updated_at: datetime | None = None


AuthOp = Literal[
    "installation",
    "installations",
    "quota",
    "install_outcome",
    "set_test",
    "session",
    "end_session",
]
# Which fields each op needs (the others it ignores).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "installation": ("corp_id",),
    "install_outcome": ("auth_code",),
    "session": ("corp_id", "session_id"),
    "end_session": ("session_id", "expires_at"),
    "set_test": ("corp_id", "test"),
}


class AuthRequest(BaseModel):
    """An ``rpc.auth`` request: ``{"op": "installation", "corp_id"}``, ``{"op":
    "installations"}``, ``{"op": "quota"}``, ``{"op": "install_outcome", "auth_code"}``,
    ``{"op": "set_test", "corp_id", "test"}`` (move an installation between test and
    released), ``{"op": "session", "corp_id", "session_id"}`` (a member session still
    valid? answered by :class:`SessionStatus`) or ``{"op": "end_session", "session_id",
    "expires_at"}`` (a sign-out: the session is remembered as ended until it would have
    expired)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: AuthOp
    corp_id: str | None = Field(None, min_length=1, max_length=128)
    auth_code: str | None = Field(None, min_length=1, max_length=1024)
    wait_s: float = Field(0.0, ge=0, le=10)
    session_id: str | None = Field(None, min_length=16, max_length=128)
    expires_at: int | None = Field(None, ge=0, description="Unix seconds")
    test: bool | None = None

    @model_validator(mode="after")
    def _fields_of_op(self) -> AuthRequest:
        for name in _REQUIRED.get(self.op, ()):
            if getattr(self, name) is None:
                raise ValueError(f"{name} is required for op {self.op!r}")
        return self


class SessionStatus(BaseModel):
    """The ``rpc.auth`` answer to ``op: session``: whether the member signed out of it, and
    the installation of the session's corp as it is now (None: none known)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ended: bool
    installation: Installation | None = None

    @property
    def over(self) -> bool:
        """The session no longer holds: signed out, or the corp uninstalled (or was refused).

        A corp with no installation record yet (its install still being processed) does not
        end the session: WeCom only signs in members of a corp that has the app.
        """
        installation = self.installation
        return self.ended or (installation is not None and installation.status != "active")


# --- Read operations of the developer console (docs/console.md) ----------------------------


class TokensStatusRequest(BaseModel):
    """``{"op": "status"}`` on ``rpc.tokens``: what token_service holds, never a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["status"]


class TicketStatus(BaseModel):
    """The stored suite_ticket: when WeCom stamped it and when the gateway received it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    timestamp: datetime
    received_at: datetime


class CachedTokenStatus(BaseModel):
    """One cached token (its kind, its corp for corp-level kinds, its lifetime), no value."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: str
    corp_id: str | None = None
    fetched_at: datetime
    expires_at: datetime


class TokensStatus(BaseModel):
    """The answer to ``{"op": "status"}`` on ``rpc.tokens``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ticket: TicketStatus | None = None
    tokens: list[CachedTokenStatus] = Field(default_factory=list)


NotifyQueryOp = Literal["counts", "results"]
NOTIFY_RESULTS_MAX: int = 200


class NotifyQuery(BaseModel):
    """A read op on ``rpc.notify``: ``{"op": "counts", "since"}`` (final results by status
    since a Unix time) or ``{"op": "results", "corp_id"?, "status"?, "limit"}`` (the latest
    results, newest first, at most :data:`NOTIFY_RESULTS_MAX`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: NotifyQueryOp
    since: float = Field(0.0, ge=0, description="Unix seconds")
    corp_id: str | None = Field(None, min_length=1, max_length=128)
    status: Literal["sent", "partial", "failed", "expired"] | None = None
    limit: int = Field(50, ge=1, le=NOTIFY_RESULTS_MAX)


class NotifyResultRow(BaseModel):
    """One final notification result as the console lists it: never the message content."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str
    corp_id: str | None = None
    status: Literal["sent", "partial", "failed", "expired"]
    errcode: int | None = None
    errmsg: str | None = None
    attempts: int = 0
    finished_at: datetime
