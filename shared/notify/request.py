"""The ``notify.request`` itself: operations on sent messages, the message union, recipients,
options, the request model and its parsing with precise, content-free errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    Field,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from shared.errors import InvalidRequest
from shared.notify.bodies import (
    FileBody,
    ImageBody,
    MarkdownBody,
    MiniprogramNoticeBody,
    MpnewsBody,
    NewsBody,
    TextBody,
    TextcardBody,
    VideoBody,
    VoiceBody,
)
from shared.notify.cards import CARD_TYPES, TemplateCard
from shared.notify.fields import (
    MAX_PARTIES,
    MAX_TAGS,
    MAX_USERS,
    SAFE_FILE_EXTENSIONS,
    _bytes_at_most,
    _Label,
    _Model,
    _NumericId,
    _UserId,
)
from shared.notify.media import _Body, _exactly_one, _extension

# --- Operations (§11.4, §11.5) ------------------------------------------------------------------


class ReplaceButton(_Model):
    replace_name: _Label = Field(description="the label the clicked button turns into")


class UpdateTemplateCardBody(_Model):
    response_code: Annotated[str, _bytes_at_most(1024)] = Field(
        description="from message/send or the template_card_event; single use, 72 h"
    )
    button: ReplaceButton | None = None
    template_card: TemplateCard | None = None
    replace_text: _Label | None = Field(None, description="only with template_card")

    @model_validator(mode="after")
    def _one_update(self) -> Self:
        _exactly_one(self.button, self.template_card, "button", "template_card")
        if self.replace_text is not None and self.template_card is None:
            raise ValueError("replace_text needs template_card")
        return self


class RecallBody(_Model):
    msgid: Annotated[str, _bytes_at_most(256)] = Field(description="from message/send, ≤ 24 h")


# --- Messages -----------------------------------------------------------------------------------


class TextMessage(_Model):
    msgtype: Literal["text"]
    text: TextBody


class ImageMessage(_Model):
    msgtype: Literal["image"]
    image: ImageBody


class VoiceMessage(_Model):
    msgtype: Literal["voice"]
    voice: VoiceBody


class VideoMessage(_Model):
    msgtype: Literal["video"]
    video: VideoBody


class FileMessage(_Model):
    msgtype: Literal["file"]
    file: FileBody


class TextcardMessage(_Model):
    msgtype: Literal["textcard"]
    textcard: TextcardBody


class NewsMessage(_Model):
    msgtype: Literal["news"]
    news: NewsBody


class MpnewsMessage(_Model):
    msgtype: Literal["mpnews"]
    mpnews: MpnewsBody


class MarkdownMessage(_Model):
    msgtype: Literal["markdown"]
    markdown: MarkdownBody


class MiniprogramNoticeMessage(_Model):
    msgtype: Literal["miniprogram_notice"]
    miniprogram_notice: MiniprogramNoticeBody


class TemplateCardMessage(_Model):
    msgtype: Literal["template_card"]
    template_card: TemplateCard


class UpdateTemplateCardMessage(_Model):
    msgtype: Literal["update_template_card"]
    update_template_card: UpdateTemplateCardBody


class RecallMessage(_Model):
    msgtype: Literal["recall"]
    recall: RecallBody


Message = Annotated[
    TextMessage
    | ImageMessage
    | VoiceMessage
    | VideoMessage
    | FileMessage
    | TextcardMessage
    | NewsMessage
    | MpnewsMessage
    | MarkdownMessage
    | MiniprogramNoticeMessage
    | TemplateCardMessage
    | UpdateTemplateCardMessage
    | RecallMessage,
    Field(discriminator="msgtype"),
]
"""Every message WeCom's message/send accepts, plus the two operations on sent messages."""

_SendMessage = (
    TextMessage
    | ImageMessage
    | VoiceMessage
    | VideoMessage
    | FileMessage
    | TextcardMessage
    | NewsMessage
    | MpnewsMessage
    | MarkdownMessage
    | MiniprogramNoticeMessage
    | TemplateCardMessage
)


def message_block(message: _SendMessage) -> _Body:
    """The body model under the message's ``msgtype`` key.

    Args:
        message: any message sent with message/send (not recall or update_template_card).
    """
    block: _Body = getattr(message, message.msgtype)
    return block


# --- The request --------------------------------------------------------------------------------


class Recipients(_Model):
    """Who gets the message: lists of ids, or ``all`` for everyone in the app's visible range."""

    users: list[_UserId] = Field(default_factory=list, max_length=MAX_USERS)
    parties: list[_NumericId] = Field(default_factory=list, max_length=MAX_PARTIES)
    tags: list[_NumericId] = Field(default_factory=list, max_length=MAX_TAGS)
    all: bool = Field(False, description='"@all": everyone in the visible range')

    @model_validator(mode="after")
    def _all_alone(self) -> Self:
        # WeCom ignores the lists with @all; refusing the mix avoids a silent surprise.
        if self.all and (self.users or self.parties or self.tags):
            raise ValueError("all=true must not be combined with users, parties or tags")
        return self

    @property
    def is_empty(self) -> bool:
        """No recipient at all."""
        return not (self.all or self.users or self.parties or self.tags)


class NotifyOptions(_Model):
    """The optional flags of message/send.

    The duplicate check is honoured as the caller sets it; left ``null`` the notifier decides
    (docs/notifier.md, "The duplicate check"): two distinct requests whose caller did not ask
    for the check are both delivered.
    """

    safe: Literal[0, 1] = Field(0, description="1: no sharing, watermark")
    enable_id_trans: Literal[0, 1] = 0
    enable_duplicate_check: Literal[0, 1] | None = Field(
        None,
        description="1: WeCom drops the same content to a member within the interval; "
        "0: never checked; null: the notifier decides, never holding back a distinct request",
    )
    duplicate_check_interval: int | None = Field(
        None, ge=1, le=14400, description="seconds, ≤ 4 h; null: 1800 when the caller asks"
    )


class NotifyRequest(_Model):
    """A ``notify.request``: send one message (or update a card, or recall a message)."""

    id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="the caller's idempotency key: 1-128 printable ASCII characters, no spaces",
    )
    corp_id: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    agent_id: PositiveInt | None = Field(
        None, description="null: the app's agent id from the corp's authorisation"
    )
    to: Recipients = Field(default_factory=Recipients, description="empty for recall")
    message: Message
    options: NotifyOptions = Field(default_factory=NotifyOptions)
    deadline: AwareDatetime | None = Field(None, description="not sent after this: expired")

    @model_validator(mode="after")
    def _fits_the_message(self) -> Self:
        # Errors raised here carry their own field path (see _describe).
        if isinstance(self.message, RecallMessage):
            if not self.to.is_empty:
                raise ValueError("to: recall takes no recipients")
        elif self.to.is_empty:
            raise ValueError("to: at least one of users, parties, tags or all=true is required")
        inline = self.message.file.inline if isinstance(self.message, FileMessage) else None
        if self.options.safe == 1 and inline is not None:
            ext = _extension(inline.filename)
            if ext not in SAFE_FILE_EXTENSIONS:
                raise ValueError(
                    "message.file.inline.filename: with options.safe=1 WeCom takes only "
                    f"{', '.join(sorted(SAFE_FILE_EXTENSIONS))} files (got .{ext})"
                )
        return self


# --- Parsing with precise errors ----------------------------------------------------------------


class NotifyRequestInvalid(InvalidRequest):
    """A notification request failed validation; ``problems`` lists (field path, what is wrong).

    The message never contains a submitted value, only paths, sizes and expectations.
    """

    reason = "invalid notification request"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        shown = [f"{path}: {what}" if path else what for path, what in problems[:20]]
        if len(problems) > 20:
            shown.append(f"and {len(problems) - 20} more")
        super().__init__("; ".join(shown) or self.reason)


_PYDANTIC_WORDING = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


def _path(loc: tuple[int | str, ...]) -> str:
    """``("message", "text", "text", "content")`` → ``message.text.content``.

    pydantic puts the discriminator's tag into the location of a tagged union: the msgtype
    right after ``message`` and the card type right after ``template_card``; both are dropped.
    """
    if loc[:1] == ("message",):
        loc = loc[:1] + loc[2:]
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not (previous == "template_card" and item in CARD_TYPES):
            parts.append(f".{item}" if parts else item)
        previous = item
    return "".join(parts)


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """One (path, problem) pair; pydantic's own texts hold no input value except tags."""
    path = _path(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "value_error":
        what = str(ctx.get("error", error["msg"]))
        if not path and ": " in what:
            # A cross-field check of NotifyRequest names its own path.
            path, _, what = what.partition(": ")
    elif kind == "union_tag_invalid":
        # The tag the caller sent is not repeated: it might be anything.
        what = f"unknown {ctx['discriminator']}; expected one of {ctx['expected_tags']}"
    elif kind == "union_tag_not_found":
        what = f"{ctx['discriminator']} is required"
    else:
        what = _PYDANTIC_WORDING.get(kind, error["msg"])
        what = what[:1].lower() + what[1:]
    return (path or "body", what)


def parse_notify_request(body: bytes | str | Mapping[str, Any]) -> NotifyRequest:
    """Validate a ``notify.request`` from JSON text or an already decoded mapping.

    Args:
        body: the JSON document, or its decoded form.

    Returns:
        The validated request.

    Raises:
        NotifyRequestInvalid: naming every wrong field and what is wrong with it, e.g.
            ``message.text.content: exceeds 2048 bytes (got 2051)``; never a field's value.
    """
    try:
        if isinstance(body, bytes | str):
            return NotifyRequest.model_validate_json(body)
        return NotifyRequest.model_validate(dict(body))
    except ValidationError as exc:
        raise NotifyRequestInvalid([_describe(error) for error in exc.errors()]) from None
