"""The public contract of notification requests (``notify.request``) and their results.

Pure models, no I/O: :class:`NotifyRequest` validates a caller's request against WeCom's own
limits (protocol doc §11) so that a bad request is refused with a precise error before
anything is sent; :class:`NotifyResult` is the ``notify.result``. How a request becomes a
WeCom call, and WeCom's answer a result, is the notifier's business (``notifier/``).

Message content is a secret (design.md, "Rules"): error messages name a field path and a size,
never the value.

Parts: ``fields`` (limits and field types), ``media`` (inline files), ``bodies`` (message
bodies), ``cards`` (template cards), ``request`` (the request and its parsing), ``result``.
"""

from __future__ import annotations

from shared.notify.bodies import (
    MpnewsBody,
)
from shared.notify.cards import (
    ButtonInteractionCard,
    MultipleInteractionCard,
    NewsNoticeCard,
    TemplateCard,
    TextNoticeCard,
    VoteInteractionCard,
)
from shared.notify.fields import (
    FILE_MAX_BYTES,
    IMAGE_MAX_BYTES,
    MEDIA_MIN_BYTES,
    MPNEWS_CONTENT_MAX_BYTES,
    SAFE_FILE_EXTENSIONS,
    VIDEO_MAX_BYTES,
    VOICE_MAX_BYTES,
    MediaType,
)
from shared.notify.media import (
    InlineFile,
    InlineImage,
    InlineMedia,
    InlineVideo,
    InlineVoice,
    MediaBody,
    inline_media_key,
)
from shared.notify.request import (
    FileMessage,
    ImageMessage,
    MarkdownMessage,
    Message,
    MiniprogramNoticeMessage,
    MpnewsMessage,
    NewsMessage,
    NotifyOptions,
    NotifyRequest,
    NotifyRequestInvalid,
    RecallMessage,
    Recipients,
    TemplateCardMessage,
    TextcardMessage,
    TextMessage,
    UpdateTemplateCardMessage,
    VideoMessage,
    VoiceMessage,
    message_block,
    parse_notify_request,
)
from shared.notify.result import (
    NotifyResult,
    NotifyStatus,
)

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
    "InlineVideo",
    "InlineVoice",
    "MarkdownMessage",
    "MediaBody",
    "MediaType",
    "Message",
    "MiniprogramNoticeMessage",
    "MpnewsBody",
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
    "inline_media_key",
    "message_block",
    "parse_notify_request",
]
