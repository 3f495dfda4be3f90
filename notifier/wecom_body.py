"""The WeCom side of a notification request: the inline files to upload first, and the exact
JSON body of ``message/send``, ``message/update_template_card`` or ``message/recall``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from notifier.domain import ALL_RECIPIENTS
from shared.notify import (
    InlineMedia,
    MediaBody,
    MediaType,
    Message,
    MpnewsBody,
    NotifyRequest,
    RecallMessage,
    Recipients,
    UpdateTemplateCardMessage,
    inline_media_key,
    message_block,
)
from shared.notify.request import UpdateTemplateCardBody

# Fields that say who gets a message or how it is checked, not what it says: WeCom's
# duplicate check is read per member, so two sends differing only in these carry the same
# content (docs/notifier.md, "The duplicate check").
_ENVELOPE: Final = frozenset(
    {"touser", "toparty", "totag", "enable_duplicate_check", "duplicate_check_interval"}
)

DEFAULT_DUPLICATE_S: Final = 1800
"""WeCom's default duplicate_check_interval (protocol doc §11.1)."""

# --- Inline media to upload ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InlineUpload:
    """One inline file the notifier must upload (media/upload) before sending."""

    key: str
    type: MediaType
    filename: str
    data: bytes = b""

    def __repr__(self) -> str:
        # The bytes are message content: keep them out of logs and tracebacks.
        return f"InlineUpload(key={self.key!r}, type={self.type!r}, size={len(self.data)})"


def _inline_items(message: Message) -> Iterator[InlineMedia]:
    if isinstance(message, RecallMessage | UpdateTemplateCardMessage):
        return
    body = message_block(message)
    if isinstance(body, MediaBody) and body.inline is not None:
        yield body.inline
    elif isinstance(body, MpnewsBody):
        yield from (article.thumb for article in body.articles if article.thumb is not None)


def inline_media(request: NotifyRequest) -> list[InlineUpload]:
    """The inline files of ``request`` to upload, each once, in the order they appear.

    Args:
        request: a validated request.

    Returns:
        One :class:`InlineUpload` per distinct :func:`inline_media_key`; empty if none.
    """
    uploads: dict[str, InlineUpload] = {}
    for media in _inline_items(request.message):
        key = inline_media_key(media)
        uploads.setdefault(key, InlineUpload(key, media.media_type, media.filename, media.data))
    return list(uploads.values())


# --- The WeCom body -----------------------------------------------------------------------------


def _send_recipients(to: Recipients) -> dict[str, str]:
    if to.all:
        return {"touser": "@all"}
    fields = {"touser": to.users, "toparty": to.parties, "totag": to.tags}
    return {name: "|".join(ids) for name, ids in fields.items() if ids}


def _update_body(
    request: NotifyRequest, op: UpdateTemplateCardBody, agent_id: int
) -> dict[str, Any]:
    to = request.to
    body: dict[str, Any] = {}
    if to.users:
        body["userids"] = list(to.users)
    if to.parties:
        body["partyids"] = [int(party) for party in to.parties]
    if to.tags:
        body["tagids"] = [int(tag) for tag in to.tags]
    body["atall"] = 1 if to.all else 0
    body["agentid"] = agent_id
    body["response_code"] = op.response_code
    body["enable_id_trans"] = request.options.enable_id_trans
    if op.button is not None:
        body["button"] = op.button.model_dump(mode="json")
    elif op.template_card is not None:
        card = op.template_card.model_dump(mode="json", exclude_none=True)
        if op.replace_text is not None:
            card["replace_text"] = op.replace_text
        body["template_card"] = card
    return body


def to_wecom_body(
    request: NotifyRequest, *, agent_id: int, media_ids: Mapping[str, str]
) -> dict[str, Any]:
    """The exact JSON body of the WeCom call that carries out ``request``.

    ``recall`` gives the body of message/recall, ``update_template_card`` that of
    message/update_template_card, every other msgtype that of message/send.

    Args:
        request: a validated request.
        agent_id: the app's agent id in the corp (``request.agent_id`` or the authorised one).
        media_ids: the media_id uploaded for each :func:`inline_media_key` of the request.

    Raises:
        KeyError: an inline file of the request has no entry in ``media_ids``.
    """
    message = request.message
    if isinstance(message, RecallMessage):
        return {"msgid": message.recall.msgid}
    if isinstance(message, UpdateTemplateCardMessage):
        return _update_body(request, message.update_template_card, agent_id)
    options = request.options
    return {
        **_send_recipients(request.to),
        "msgtype": message.msgtype,
        "agentid": agent_id,
        message.msgtype: message_block(message).wecom_block(media_ids),
        "safe": options.safe,
        "enable_id_trans": options.enable_id_trans,
        # Unset options go out as WeCom's own defaults; the notifier sets them before this.
        "enable_duplicate_check": options.enable_duplicate_check or 0,
        "duplicate_check_interval": options.duplicate_check_interval or DEFAULT_DUPLICATE_S,
    }


def content_digest(corp_id: str, body: Mapping[str, Any]) -> str:
    """The key of what a message/send says, whoever it goes to: sha256 of the corp and the
    canonical JSON of ``body`` without recipients and duplicate-check fields."""
    content = {key: value for key, value in body.items() if key not in _ENVELOPE}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{corp_id}\0{text}".encode()).hexdigest()


def recipient_keys(to: Recipients) -> list[str]:
    """The keys a send is remembered under for the duplicate check: lower-cased user ids
    (WeCom compares them case-insensitively), and ``*`` for parties, tags or @all."""
    keys = sorted({user.lower() for user in to.users})
    if to.all or to.parties or to.tags:
        keys.append(ALL_RECIPIENTS)
    return keys
