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
        description="sent: all delivered; partial: some recipients invalid, unlicensed or "
        "held back by the duplicate check; failed: WeCom refused, or held it back for "
        "everyone; expired: the deadline passed before it could be sent"
    )
    msgid: str | None = Field(None, description="for message/recall (24 h); when WeCom sent it")
    response_code: str | None = Field(
        None,
        description="for message/update_template_card: interactive template cards (and "
        "notice cards with action_menu) only; valid 72 h, single use",
    )
    duplicate_check: bool = Field(
        False, description="whether WeCom's duplicate check was on for the message"
    )
    invalid_users: list[str] = Field(default_factory=list, description="lower-cased by WeCom")
    invalid_parties: list[str] = Field(default_factory=list)
    invalid_tags: list[str] = Field(default_factory=list)
    unlicensed_users: list[str] = Field(
        default_factory=list, description="WeCom's unlicenseduser: visible, without a licence"
    )
    duplicate_users: list[str] = Field(
        default_factory=list,
        description="members the duplicate check held back: they got the same content "
        "within the interval from a send that had the check on (lower-cased)",
    )
    errcode: int | None = Field(None, description="WeCom's errcode; null if never answered")
    errmsg: str | None = None
    attempts: int = Field(ge=0, description="calls made to WeCom for this request")
