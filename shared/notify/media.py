"""Inline media of notification requests: the bytes a caller may give instead of a media_id,
their per-type size and format limits, and the stable key each upload is cached under."""

from __future__ import annotations

import binascii
import hashlib
from base64 import b64encode
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BeforeValidator, Field, field_serializer, field_validator, model_validator

from shared.notify.fields import (
    FILE_MAX_BYTES,
    IMAGE_MAX_BYTES,
    MEDIA_MIN_BYTES,
    VIDEO_MAX_BYTES,
    VOICE_MAX_BYTES,
    MediaType,
    _MediaId,
    _Model,
    _utf8_size,
)

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


class _Body(_Model):
    def wecom_block(self, media_ids: Mapping[str, str]) -> dict[str, Any]:
        """The ``msgtype`` block of the WeCom body; only media blocks use ``media_ids``."""
        return self.model_dump(mode="json", exclude_none=True)


class MediaBody(_Body):
    """A media block: a ``media_id``, or ``inline`` bytes the notifier uploads first."""

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
