"""The notifier's WeCom calls: media/upload, message/send, update_template_card and recall,
each with the corp token (cached from ``rpc.tokens``) and its one stale-token retry
(``with_token``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp

from notifier.tokens import CachedCorpTokens
from notifier.wecom_body import InlineUpload
from shared.notify import NotifyRequest, RecallMessage, UpdateTemplateCardMessage
from shared.wecom.api import WeComClient, with_token

SEND_PATH: Final = "/cgi-bin/message/send"
UPDATE_CARD_PATH: Final = "/cgi-bin/message/update_template_card"
RECALL_PATH: Final = "/cgi-bin/message/recall"
UPLOAD_PATH: Final = "/cgi-bin/media/upload"


def path_of(request: NotifyRequest) -> str:
    """The WeCom API that carries out ``request``."""
    if isinstance(request.message, RecallMessage):
        return RECALL_PATH
    if isinstance(request.message, UpdateTemplateCardMessage):
        return UPDATE_CARD_PATH
    return SEND_PATH


class WeComSender:
    """Calls WeCom for a corp with its corp token."""

    def __init__(self, client: WeComClient, tokens: CachedCorpTokens) -> None:
        self._client = client
        self._tokens = tokens

    async def upload(self, corp_id: str, upload: InlineUpload) -> str:
        """Upload one inline file (protocol doc §11.6); its media_id.

        Repeating an upload is harmless (a second media_id), so any failure may be retried.
        """

        async def call(token: str) -> dict[str, Any]:
            # A fresh form per call: aiohttp consumes a FormData when it sends it.
            form = aiohttp.FormData()
            form.add_field(
                "media",
                upload.data,
                filename=upload.filename,
                content_type="application/octet-stream",
            )
            return await self._client.post(
                UPLOAD_PATH, params={"access_token": token, "type": upload.type}, data=form
            )

        answer = await with_token(self._tokens.source(corp_id), call)
        return str(answer["media_id"])

    async def send(self, corp_id: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One call of ``path`` with ``body``; WeCom's answer (errcode 0).

        Raises:
            WeComApiError: WeCom refused it (a subclass says whether to retry).
            WeComUnavailable: no usable answer (``maybe_delivered`` tells if it may have
                reached WeCom).
            TokenUnavailable, RpcTimeout, BusError: no corp token.
        """

        async def call(token: str) -> dict[str, Any]:
            return await self._client.post(path, params={"access_token": token}, body=body)

        return await with_token(self._tokens.source(corp_id), call)
