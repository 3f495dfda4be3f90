"""The public contract of notification requests (``notify.request``) and their results.

Pure models and helpers, no I/O: :class:`NotifyRequest` validates a caller's request against
WeCom's own limits (protocol doc §11) so that a bad request is refused with a precise error
before anything is sent; :func:`to_wecom_body` builds the exact JSON body of ``message/send``,
``message/update_template_card`` or ``message/recall``; :func:`result_from_wecom_answer` maps
WeCom's answer onto a :class:`NotifyResult` (``notify.result``).

Message content is a secret (design.md, "Rules"): error messages name a field path and a size,
never the value.
"""

from __future__ import annotations

import binascii
import hashlib
from base64 import b64encode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from shared.errors import InvalidRequest

__all__ = [
    "FILE_MAX_BYTES",
    "IMAGE_MAX_BYTES",
    "MEDIA_MIN_BYTES",
    "MPNEWS_CONTENT_MAX_BYTES",
    "SAFE_FILE_EXTENSIONS",
    "VIDEO_MAX_BYTES",
    "VOICE_MAX_BYTES",
    "ButtonInteractionCard",
    "FileMessage",
    "ImageMessage",
    "InlineFile",
    "InlineImage",
    "InlineMedia",
    "InlineUpload",
    "InlineVideo",
    "InlineVoice",
    "MarkdownMessage",
    "MediaType",
    "Message",
    "MiniprogramNoticeMessage",
    "MpnewsMessage",
    "MultipleInteractionCard",
    "NewsMessage",
    "NewsNoticeCard",
    "NotifyOptions",
    "NotifyRequest",
    "NotifyRequestInvalid",
    "NotifyResult",
    "NotifyStatus",
    "RecallMessage",
    "Recipients",
    "TemplateCard",
    "TemplateCardMessage",
    "TextMessage",
    "TextNoticeCard",
    "TextcardMessage",
    "UpdateTemplateCardMessage",
    "VideoMessage",
    "VoiceMessage",
    "VoteInteractionCard",
    "expired_result",
    "inline_media",
    "inline_media_key",
    "parse_notify_request",
    "result_from_wecom_answer",
    "to_wecom_body",
]

# --- Limits (protocol doc §11) -----------------------------------------------------------------
#
# Sizes in MB are read as decimal megabytes (10^6): the docs do not say which, and the smaller
# reading can never be refused by WeCom for being too large.

MEDIA_MIN_BYTES = 6
"""media/upload refuses files of 5 bytes or less."""
IMAGE_MAX_BYTES = 2_000_000
"""Open question §15.12: most copies say 2 MB, one newer copy 10 MB; the stricter 2 MB is safe."""
VOICE_MAX_BYTES = 2_000_000
VIDEO_MAX_BYTES = 10_000_000
FILE_MAX_BYTES = 20_000_000
MPNEWS_CONTENT_MAX_BYTES = 666_000
"""The doc's "666 K", read as 666 000 bytes: the stricter of KB and KiB."""
SAFE_FILE_EXTENSIONS = frozenset(
    [
        "txt",
        "pdf",
        "doc",
        "docx",
        "ppt",
        "pptx",
        "xls",
        "xlsx",
        "xml",
        "jpg",
        "jpeg",
        "png",
        "bmp",
        "gif",
    ]
)
"""The only file types WeCom delivers as a ``file`` message with ``safe=1``."""

MAX_USERS = 1000
MAX_PARTIES = 100
MAX_TAGS = 100

MediaType = Literal["image", "voice", "video", "file"]
NotifyStatus = Literal["sent", "partial", "failed", "expired"]


# --- Field types --------------------------------------------------------------------------------


def _utf8_size(value: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate (possible in an already decoded mapping) is not text WeCom can take.
        raise ValueError("is not valid unicode text") from None


def _check_size(value: str, max_bytes: int, *, allow_empty: bool = False) -> str:
    size = _utf8_size(value)
    if size == 0 and not allow_empty:
        raise ValueError("must not be empty")
    if size > max_bytes:
        raise ValueError(f"exceeds {max_bytes} bytes (got {size})")
    return value


def _bytes_at_most(max_bytes: int, *, allow_empty: bool = False) -> AfterValidator:
    """A UTF-8 byte-length bound: WeCom counts most of its limits in bytes, not characters."""
    return AfterValidator(lambda value: _check_size(value, max_bytes, allow_empty=allow_empty))


def _chars_at_most(max_chars: int) -> AfterValidator:
    """A character-count bound, for the few limits WeCom states in characters."""

    def check(value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        if len(value) > max_chars:
            raise ValueError(f"exceeds {max_chars} characters (got {len(value)})")
        return value

    return AfterValidator(check)


def _check_url(value: str) -> str:
    _check_size(value, 2048)
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _check_task_id(value: str) -> str:
    size = _utf8_size(value)
    if size == 0:
        raise ValueError("must not be empty")
    if size > 128:
        raise ValueError(f"exceeds 128 bytes (got {size})")
    if not all(ch.isascii() and (ch.isalnum() or ch in "_-@") for ch in value):
        raise ValueError("may contain only 0-9, A-Z, a-z, _, - and @")
    return value


def _check_user_id(value: str) -> str:
    size = _utf8_size(value)
    if size == 0:
        raise ValueError("must not be empty")
    if size > 64:
        raise ValueError(f"exceeds 64 bytes (got {size})")
    if "|" in value:
        raise ValueError("must not contain '|' (WeCom's list separator)")
    if value.lower() == "@all":
        raise ValueError("use to.all=true instead of '@all'")
    return value


def _id_to_text(value: Any) -> Any:
    """Department and tag ids are integers at WeCom; accept ``2`` as well as ``"2"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_numeric_id(value: str) -> str:
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > 0xFFFFFFFF:
        raise ValueError("must be a numeric id (a 32-bit unsigned integer)")
    return value


_Text = Annotated[str, _bytes_at_most(2048)]
"""``text`` and ``markdown`` content: ≤ 2048 bytes (WeCom truncates; 45002 beyond)."""
_Title = Annotated[str, _bytes_at_most(128)]
_Description = Annotated[str, _bytes_at_most(512, allow_empty=True)]
_Key = Annotated[str, _bytes_at_most(1024)]
"""A button, submit or question key: ≤ 1024 bytes (§11.3)."""
_OptionId = Annotated[str, _bytes_at_most(128)]
_Label = Annotated[str, _bytes_at_most(1024)]
"""A short UI label whose limit WeCom gives only as UI guidance; bounded to refuse nonsense."""
_Url = Annotated[str, AfterValidator(_check_url)]
_AppId = Annotated[str, _bytes_at_most(64)]
_PagePath = Annotated[str, _bytes_at_most(128)]
_MediaId = Annotated[str, _bytes_at_most(512)]
_TaskId = Annotated[str, AfterValidator(_check_task_id)]
_UserId = Annotated[str, AfterValidator(_check_user_id)]
_NumericId = Annotated[str, BeforeValidator(_id_to_text), AfterValidator(_check_numeric_id)]


class _Model(BaseModel):
    """Base of the request models: immutable, and unknown fields are refused (likely typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _require_by_type(type_: int, fields: Mapping[int, tuple[str, object]]) -> None:
    """``type`` selects which companion field must be set (url for 1, appid for 2, …)."""
    if type_ in fields:
        name, value = fields[type_]
        if value is None:
            raise ValueError(f"{name} is required when type is {type_}")


# --- Inline media -------------------------------------------------------------------------------


def _decode_base64(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return binascii.a2b_base64(value, strict_mode=True)
        except binascii.Error:
            raise ValueError("is not valid base64") from None
    return value


class InlineMedia(_Model):
    """Media bytes given inline (base64 in JSON); the notifier uploads them with media/upload.

    Each subclass is one media/upload ``type`` with its size and format limits.
    """

    media_type: ClassVar[MediaType]
    max_bytes: ClassVar[int]
    extensions: ClassVar[frozenset[str] | None] = None
    format_name: ClassVar[str] = ""

    filename: str = Field(description="shown to members as the file name; its extension counts")
    data: Annotated[bytes, BeforeValidator(_decode_base64)] = Field(
        description="the file's bytes, standard base64 with padding"
    )

    @staticmethod
    def _has_format(data: bytes) -> bool:
        return True

    @field_validator("filename")
    @classmethod
    def _check_filename(cls, value: str) -> str:
        size = _utf8_size(value)
        if size == 0:
            raise ValueError("must not be empty")
        if size > 255:
            raise ValueError(f"exceeds 255 bytes (got {size})")
        if any(ch in value for ch in "/\\") or any(ord(ch) < 32 for ch in value):
            raise ValueError("must be a bare file name (no path separators or control characters)")
        if cls.extensions is not None and _extension(value) not in cls.extensions:
            allowed = ", ".join(sorted(cls.extensions))
            raise ValueError(f"{cls.media_type} must have one of the extensions {allowed}")
        return value

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: bytes) -> bytes:
        if len(value) < MEDIA_MIN_BYTES:
            raise ValueError(f"must be at least {MEDIA_MIN_BYTES} bytes (got {len(value)})")
        if len(value) > cls.max_bytes:
            raise ValueError(f"exceeds {cls.max_bytes} bytes (got {len(value)})")
        if not cls._has_format(value):
            raise ValueError(f"is not {cls.format_name} data")
        return value

    @field_serializer("data")
    def _encode_data(self, value: bytes) -> str:
        return b64encode(value).decode("ascii")


def _extension(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    return ext.lower() if dot else ""


class InlineImage(InlineMedia):
    """An image: JPG or PNG, ≤ :data:`IMAGE_MAX_BYTES`."""

    media_type = "image"
    max_bytes = IMAGE_MAX_BYTES
    extensions = frozenset({"jpg", "jpeg", "png"})
    format_name = "JPEG or PNG"

    @staticmethod
    def _has_format(data: bytes) -> bool:
        return data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"))


class InlineVoice(InlineMedia):
    """A voice note: AMR only, ≤ :data:`VOICE_MAX_BYTES` (≤ 60 s, not checked here)."""

    media_type = "voice"
    max_bytes = VOICE_MAX_BYTES
    extensions = frozenset({"amr"})
    format_name = "AMR"

    @staticmethod
    def _has_format(data: bytes) -> bool:
        return data.startswith(b"#!AMR")


class InlineVideo(InlineMedia):
    """A video: MP4, ≤ :data:`VIDEO_MAX_BYTES`."""

    media_type = "video"
    max_bytes = VIDEO_MAX_BYTES
    extensions = frozenset({"mp4"})
    format_name = "MP4"

    @staticmethod
    def _has_format(data: bytes) -> bool:
        # An ISO media file opens with a box whose type, at offset 4, is "ftyp".
        return data[4:8] == b"ftyp"


class InlineFile(InlineMedia):
    """Any file, ≤ :data:`FILE_MAX_BYTES` (with ``safe=1`` see :data:`SAFE_FILE_EXTENSIONS`)."""

    media_type = "file"
    max_bytes = FILE_MAX_BYTES


def _exactly_one(ref: object, inline: object, ref_name: str, inline_name: str) -> None:
    if (ref is None) == (inline is None):
        raise ValueError(f"exactly one of {ref_name} or {inline_name} is required")


def _resolve(media: InlineMedia, media_ids: Mapping[str, str]) -> str:
    key = inline_media_key(media)
    try:
        return media_ids[key]
    except KeyError:
        raise KeyError(f"no media_id was given for inline {media.media_type} {key}") from None


class _Body(_Model):
    def wecom_block(self, media_ids: Mapping[str, str]) -> dict[str, Any]:
        """The ``msgtype`` block of the WeCom body; only media blocks use ``media_ids``."""
        return self.model_dump(mode="json", exclude_none=True)


class _MediaBody(_Body):
    media_id: _MediaId | None = Field(None, description="from media/upload, valid 3 days")
    inline: InlineMedia | None = Field(None, description="bytes to upload instead of a media_id")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        _exactly_one(self.media_id, self.inline, "media_id", "inline")
        return self

    def wecom_block(self, media_ids: Mapping[str, str]) -> dict[str, Any]:
        block = self.model_dump(mode="json", exclude_none=True, exclude={"inline"})
        if self.inline is not None:
            block["media_id"] = _resolve(self.inline, media_ids)
        return block


# --- Message bodies (§11.2) ---------------------------------------------------------------------


class TextBody(_Body):
    content: _Text = Field(description="≤ 2048 bytes; \\n and <a href> allowed")


class ImageBody(_MediaBody):
    inline: InlineImage | None = None


class VoiceBody(_MediaBody):
    inline: InlineVoice | None = None


class VideoBody(_MediaBody):
    inline: InlineVideo | None = None
    title: _Title | None = Field(None, description="≤ 128 bytes")
    description: _Description | None = Field(None, description="≤ 512 bytes")


class FileBody(_MediaBody):
    inline: InlineFile | None = None


class TextcardBody(_Body):
    title: _Title = Field(description="≤ 128 bytes")
    # The doc gives 512 once as characters and once as bytes; bytes is the stricter reading.
    description: Annotated[str, _bytes_at_most(512)] = Field(description="≤ 512 bytes")
    url: _Url = Field(description="≤ 2048 bytes, with http(s) scheme")
    # Stated in characters: the default label 详情 is 2 characters but 6 bytes.
    btntxt: Annotated[str, _chars_at_most(4)] | None = Field(None, description="≤ 4 characters")


class NewsArticle(_Body):
    title: _Title = Field(description="≤ 128 bytes")
    description: _Description | None = Field(None, description="≤ 512 bytes")
    url: _Url | None = Field(None, description="≤ 2048 bytes; required unless appid is set")
    picurl: _Url | None = None
    appid: _AppId | None = Field(None, description="mini-program; with pagepath overrides url")
    pagepath: _PagePath | None = Field(None, description="≤ 128 bytes; needs appid")

    @model_validator(mode="after")
    def _has_target(self) -> Self:
        if self.url is None and self.appid is None:
            raise ValueError("url or appid is required")
        if self.pagepath is not None and self.appid is None:
            raise ValueError("pagepath needs appid")
        return self


class NewsBody(_Body):
    articles: list[NewsArticle] = Field(min_length=1, max_length=8)


class MpnewsArticle(_Model):
    title: _Title = Field(description="≤ 128 bytes")
    thumb_media_id: _MediaId | None = None
    thumb: InlineImage | None = Field(None, description="inline thumbnail instead of the id")
    # author and digest limits are from the official page (the protocol doc omits them).
    author: Annotated[str, _bytes_at_most(64, allow_empty=True)] | None = None
    content_source_url: _Url | None = None
    content: Annotated[str, _bytes_at_most(MPNEWS_CONTENT_MAX_BYTES)] = Field(
        description="HTML, ≤ 666 000 bytes"
    )
    digest: _Description | None = None

    @model_validator(mode="after")
    def _one_thumb(self) -> Self:
        _exactly_one(self.thumb_media_id, self.thumb, "thumb_media_id", "thumb")
        return self

    def wecom_block(self, media_ids: Mapping[str, str]) -> dict[str, Any]:
        block = self.model_dump(mode="json", exclude_none=True, exclude={"thumb"})
        if self.thumb is not None:
            block["thumb_media_id"] = _resolve(self.thumb, media_ids)
        return block


class MpnewsBody(_Body):
    articles: list[MpnewsArticle] = Field(min_length=1, max_length=8)

    def wecom_block(self, media_ids: Mapping[str, str]) -> dict[str, Any]:
        return {"articles": [article.wecom_block(media_ids) for article in self.articles]}


class MarkdownBody(_Body):
    content: _Text = Field(description="≤ 2048 bytes; shown in the WeCom client only")


class ContentItem(_Model):
    key: _Label
    value: _Label


class MiniprogramNoticeBody(_Body):
    appid: _AppId
    page: _PagePath | None = None
    title: _Label
    description: _Label | None = None
    emphasis_first_item: bool = False
    content_item: list[ContentItem] = Field(default_factory=list, max_length=10)


# --- template_card (§11.3) ----------------------------------------------------------------------


class CardSource(_Model):
    icon_url: _Url | None = None
    desc: _Label | None = None
    desc_color: Literal[0, 1, 2, 3] = Field(0, description="0 grey, 1 black, 2 red, 3 green")


class ActionMenuItem(_Model):
    text: _Label
    key: _Key


class ActionMenu(_Model):
    desc: _Label | None = None
    action_list: list[ActionMenuItem] = Field(min_length=1, max_length=3)


class MainTitle(_Model):
    title: _Label | None = None
    desc: _Label | None = None


class QuoteArea(_Model):
    type: Literal[0, 1, 2] = Field(0, description="0 none, 1 url, 2 mini-program")
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None
    title: _Label | None = None
    quote_text: _Label | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class HorizontalContent(_Model):
    type: Literal[0, 1, 2, 3] = Field(0, description="0 text, 1 url, 2 file, 3 member")
    keyname: _Label
    value: _Label | None = None
    url: _Url | None = None
    media_id: _MediaId | None = None
    userid: _UserId | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(
            self.type,
            {1: ("url", self.url), 2: ("media_id", self.media_id), 3: ("userid", self.userid)},
        )
        return self


class JumpItem(_Model):
    type: Literal[0, 1, 2] = Field(0, description="0 none, 1 url, 2 mini-program")
    title: _Label
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class CardAction(_Model):
    type: Literal[0, 1, 2] = Field(0, description="0 none, 1 url, 2 mini-program")
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class EmphasisContent(_Model):
    title: _Label | None = None
    desc: _Label | None = None


class CardImage(_Model):
    url: _Url
    aspect_ratio: float | None = Field(None, ge=1.3, le=2.25, description="default 1.3")


class ImageTextArea(_Model):
    type: Literal[0, 1, 2] = 0
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None
    title: _Label | None = None
    desc: _Label | None = None
    image_url: _Url

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class VerticalContent(_Model):
    title: _Label
    desc: _Label | None = None


class CardButton(_Model):
    text: _Label
    style: Literal[1, 2, 3, 4] | None = None
    type: Literal[0, 1] = Field(0, description="0 callback (needs key), 1 url")
    key: _Key | None = None
    url: _Url | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {0: ("key", self.key), 1: ("url", self.url)})
        return self


class SelectOption(_Model):
    id: _OptionId = Field(description="≤ 128 bytes")
    text: _Label


class ButtonSelection(_Model):
    question_key: _Key
    title: _Label | None = None
    selected_id: _OptionId | None = None
    option_list: list[SelectOption] = Field(min_length=1, max_length=10)


class CheckboxOption(_Model):
    id: _OptionId
    text: _Label
    is_checked: bool = False


class Checkbox(_Model):
    question_key: _Key
    mode: Literal[0, 1] = Field(0, description="0 single choice, 1 multiple choice")
    option_list: list[CheckboxOption] = Field(min_length=1, max_length=20)


class SubmitButton(_Model):
    text: _Label
    key: _Key


class SelectItem(_Model):
    question_key: _Key
    title: _Label | None = None
    selected_id: _OptionId | None = None
    option_list: list[SelectOption] = Field(min_length=1, max_length=10)


def _unique_keys(keys: list[str], what: str) -> None:
    if len(set(keys)) != len(keys):
        raise ValueError(f"{what} must be unique")


class _CardBase(_Body):
    """Fields every card type accepts. Length ranges the doc gives as UI guidance are not
    enforced (they differ between doc revisions); ids, keys and counts are."""

    card_type: str
    interactive: ClassVar[bool] = False

    source: CardSource | None = None
    action_menu: ActionMenu | None = None
    main_title: MainTitle | None = None
    task_id: _TaskId | None = Field(None, description="unique per app; [0-9A-Za-z_-@] ≤ 128 B")
    quote_area: QuoteArea | None = None
    sub_title_text: _Label | None = None
    horizontal_content_list: list[HorizontalContent] = Field(default_factory=list, max_length=6)
    jump_list: list[JumpItem] = Field(default_factory=list, max_length=3)
    card_action: CardAction | None = None

    @model_validator(mode="after")
    def _task_id_when_needed(self) -> Self:
        if self.task_id is None and self.interactive:
            raise ValueError(f"task_id is required for {self.card_type}")
        if self.task_id is None and self.action_menu is not None:
            raise ValueError("task_id is required with action_menu")
        return self


def _check_notice_action(action: CardAction) -> None:
    if action.type == 0:
        raise ValueError("card_action.type must be 1 (url) or 2 (mini-program)")


class TextNoticeCard(_CardBase):
    card_type: Literal["text_notice"]
    emphasis_content: EmphasisContent | None = None
    card_action: CardAction

    @model_validator(mode="after")
    def _action(self) -> Self:
        _check_notice_action(self.card_action)
        return self


class NewsNoticeCard(_CardBase):
    card_type: Literal["news_notice"]
    card_image: CardImage | None = None
    image_text_area: ImageTextArea | None = None
    vertical_content_list: list[VerticalContent] = Field(default_factory=list, max_length=4)
    card_action: CardAction

    @model_validator(mode="after")
    def _image_and_action(self) -> Self:
        if self.card_image is None and self.image_text_area is None:
            raise ValueError("card_image or image_text_area is required")
        _check_notice_action(self.card_action)
        return self


class ButtonInteractionCard(_CardBase):
    card_type: Literal["button_interaction"]
    interactive = True
    button_selection: ButtonSelection | None = None
    button_list: list[CardButton] = Field(min_length=1, max_length=6)

    @model_validator(mode="after")
    def _keys(self) -> Self:
        _unique_keys([b.key for b in self.button_list if b.key is not None], "button keys")
        return self


class VoteInteractionCard(_CardBase):
    card_type: Literal["vote_interaction"]
    interactive = True
    checkbox: Checkbox
    submit_button: SubmitButton


class MultipleInteractionCard(_CardBase):
    card_type: Literal["multiple_interaction"]
    interactive = True
    select_list: list[SelectItem] = Field(min_length=1, max_length=3)
    submit_button: SubmitButton

    @model_validator(mode="after")
    def _keys(self) -> Self:
        _unique_keys([item.question_key for item in self.select_list], "question keys")
        return self


TemplateCard = Annotated[
    TextNoticeCard
    | NewsNoticeCard
    | ButtonInteractionCard
    | VoteInteractionCard
    | MultipleInteractionCard,
    Field(discriminator="card_type"),
]
CARD_TYPES = frozenset(
    {"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"}
)


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


def _block(message: _SendMessage) -> _Body:
    """The body model under the message's ``msgtype`` key."""
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
    """The optional flags of message/send."""

    safe: Literal[0, 1] = Field(0, description="1: no sharing, watermark")
    enable_id_trans: Literal[0, 1] = 0
    enable_duplicate_check: Literal[0, 1] = 0
    duplicate_check_interval: int = Field(1800, ge=1, le=14400, description="seconds, ≤ 4 h")


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


def inline_media_key(media: InlineMedia) -> str:
    """The stable key of an inline file: sha256 hex of its upload type, file name and bytes.

    The file name is part of the key because WeCom shows it to members: the same bytes under
    two names are two uploads. Fields are NUL-separated; a file name holds no control character.
    """
    digest = hashlib.sha256()
    digest.update(media.media_type.encode("ascii") + b"\0")
    digest.update(media.filename.encode("utf-8") + b"\0")
    digest.update(media.data)
    return digest.hexdigest()


def _inline_items(message: Message) -> Iterator[InlineMedia]:
    if isinstance(message, RecallMessage | UpdateTemplateCardMessage):
        return
    body = _block(message)
    if isinstance(body, _MediaBody) and body.inline is not None:
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
        message.msgtype: _block(message).wecom_block(media_ids),
        "safe": options.safe,
        "enable_id_trans": options.enable_id_trans,
        "enable_duplicate_check": options.enable_duplicate_check,
        "duplicate_check_interval": options.duplicate_check_interval,
    }


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


def _id_list(value: Any) -> list[str]:
    """``"a|b"`` (message/send) or ``["a", "b"]`` (update_template_card) → ``["a", "b"]``."""
    if isinstance(value, str):
        return [item for item in value.split("|") if item]
    if isinstance(value, list):
        return [str(item) for item in value if str(item)]
    return []


def _errcode(answer: Mapping[str, Any]) -> int | None:
    value = answer.get("errcode")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def result_from_wecom_answer(
    request_id: str, answer: Mapping[str, Any], attempts: int
) -> NotifyResult:
    """Map WeCom's answer to the final call of a request onto its result.

    errcode 0 is ``sent``, or ``partial`` when invaliduser/invalidparty/invalidtag name anyone;
    any other errcode (81013 "all recipients invalid" included) is ``failed``. An answer with
    no usable errcode is ``failed`` with ``errcode`` null.

    Args:
        request_id: the request's id.
        answer: WeCom's decoded JSON answer.
        attempts: calls made to WeCom for this request, this one included.
    """
    errcode = _errcode(answer)
    invalid = {
        "invalid_users": _id_list(answer.get("invaliduser")),
        "invalid_parties": _id_list(answer.get("invalidparty")),
        "invalid_tags": _id_list(answer.get("invalidtag")),
    }
    status: NotifyStatus = "failed"
    if errcode == 0:
        status = "partial" if any(invalid.values()) else "sent"
    errmsg = answer.get("errmsg")
    if errcode is None and not isinstance(errmsg, str):
        errmsg = "the answer carries no errcode"
    msgid = answer.get("msgid")
    return NotifyResult(
        request_id=request_id,
        status=status,
        msgid=str(msgid) if msgid not in (None, "") else None,
        errcode=errcode,
        errmsg=errmsg if isinstance(errmsg, str) else None,
        attempts=attempts,
        **invalid,
    )


def expired_result(request_id: str, attempts: int) -> NotifyResult:
    """The result of a request whose deadline passed before WeCom accepted it."""
    return NotifyResult(
        request_id=request_id,
        status="expired",
        errmsg="the deadline passed before the message was sent",
        attempts=attempts,
    )
