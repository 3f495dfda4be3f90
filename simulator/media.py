"""Temporary media (protocol doc §11.6): upload checks and the store of media ids (pure).

Every file is more than 5 bytes; voice ≤ 2 MB AMR, video ≤ 10 MB MP4, file ≤ 20 MB, image
JPG/PNG with a limit the doc gives as 2 MB in most copies and 10 MB in one: we default to
the stricter 2 MB (``SIM_MEDIA_IMAGE_MAX_BYTES``). A media id is valid 3 days and shared by
every app of the corp. Errors as the doc lists them: 40005 bad ``type`` parameter, 40004 a
file of the wrong format for its type, 40009/40011/40006 image/video/other size, 44001 empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from simulator.state_types import Clock, WeComError

MB = 1024 * 1024
MEDIA_TTL_S = 3 * 86_400
MIN_BYTES = 6
DEFAULT_IMAGE_MAX_BYTES = 2 * MB
MAX_BYTES = {"voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
_FORMATS = {"image": {".jpg", ".jpeg", ".png"}, "voice": {".amr"}, "video": {".mp4"}}
_SIZE_ERRORS = {"image": 40009, "video": 40011}
MEDIA_TYPES = frozenset({"image", "voice", "video", "file"})


@dataclass(frozen=True, slots=True)
class Media:
    """One uploaded file, without its bytes: the simulator only needs to know it exists."""

    media_id: str
    corp_id: str
    type: str
    filename: str
    size: int
    created_at: int


def check_upload(media_type: str | None, filename: str, size: int, image_max: int) -> str:
    """The media type if WeCom would take this file; its refusal otherwise."""
    if media_type not in MEDIA_TYPES:
        raise WeComError(40005, "invalid file type parameter")
    if size == 0:
        raise WeComError(44001, "empty media data")
    limit = image_max if media_type == "image" else MAX_BYTES[media_type]
    if size < MIN_BYTES or size > limit:
        raise WeComError(_SIZE_ERRORS.get(media_type, 40006), f"invalid {media_type} size")
    allowed = _FORMATS.get(media_type)
    if allowed is not None and PurePosixPath(filename).suffix.lower() not in allowed:
        raise WeComError(40004, f"invalid media type, {media_type} must be {sorted(allowed)}")
    return media_type


@dataclass
class MediaStore:
    """Media ids per corp, valid three days from upload."""

    clock: Clock
    items: dict[str, Media] = field(default_factory=dict, init=False)

    def reset(self) -> None:
        self.items.clear()

    def add(self, media: Media) -> None:
        self.items[media.media_id] = media

    def is_valid(self, corp_id: str, media_id: str) -> bool:
        media = self.items.get(media_id)
        return (
            media is not None
            and media.corp_id == corp_id
            and self.clock() < media.created_at + MEDIA_TTL_S
        )
