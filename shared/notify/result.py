"""The ``notify.result``: the outcome of one request, as published on wecom.events."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NotifyStatus = Literal["sent", "partial", "failed", "expired"]

# --- The result ---------------------------------------------------------------------------------


class NotifyResult(BaseModel):
    """A ``notify.result``: the outcome of one request, published once it is final."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str = Field(description="the request's id")
    status: NotifyStatus = Field(
        description="sent: all delivered; partial: some recipients invalid; failed: WeCom "
        "refused; expired: the deadline passed before it could be sent"
    )
    msgid: str | None = Field(None, description="for recall; only when WeCom sent it")
    invalid_users: list[str] = Field(default_factory=list, description="lower-cased by WeCom")
    invalid_parties: list[str] = Field(default_factory=list)
    invalid_tags: list[str] = Field(default_factory=list)
    errcode: int | None = Field(None, description="WeCom's errcode; null if never answered")
    errmsg: str | None = None
    attempts: int = Field(ge=0, description="calls made to WeCom for this request")
