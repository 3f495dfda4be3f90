"""Limits and field types of notification requests: WeCom's sizes (protocol doc §11), the
byte- and character-bounded string types, and the base model every request part builds on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

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
