"""The message bodies of ``message/send`` (protocol doc §11.2): text, media, textcard, news,
mpnews, markdown and miniprogram_notice blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from shared.notify.fields import (
    MPNEWS_CONTENT_MAX_BYTES,
    _AppId,
    _bytes_at_most,
    _chars_at_most,
    _Description,
    _Label,
    _MediaId,
    _Model,
    _PagePath,
    _Text,
    _Title,
    _Url,
)
from shared.notify.media import (
    InlineFile,
    InlineImage,
    InlineVideo,
    InlineVoice,
    MediaBody,
    _Body,
    _exactly_one,
    _resolve,
)

# --- Message bodies (§11.2) ---------------------------------------------------------------------


class TextBody(_Body):
    content: _Text = Field(description="≤ 2048 bytes; \\n and <a href> allowed")


class ImageBody(MediaBody):
    inline: InlineImage | None = None


class VoiceBody(MediaBody):
    inline: InlineVoice | None = None


class VideoBody(MediaBody):
    inline: InlineVideo | None = None
    title: _Title | None = Field(None, description="≤ 128 bytes")
    description: _Description | None = Field(None, description="≤ 512 bytes")


class FileBody(MediaBody):
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
