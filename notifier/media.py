"""Inline media of a request: each file's media_id, pinned in the request record (a retry must
send the very same body for WeCom's duplicate check), else cached, else uploaded."""

from __future__ import annotations

from dataclasses import replace

from notifier.metrics import NotifierMetrics
from notifier.outcomes import Progress, Wait, guard
from notifier.sender import WeComSender
from notifier.store import NotifierRepository
from notifier.wecom_body import inline_media
from shared.notify import NotifyRequest


class MediaResolver:
    """Finds or uploads the media_id of every inline file of a request."""

    def __init__(
        self,
        repository: NotifierRepository,
        sender: WeComSender,
        metrics: NotifierMetrics,
        *,
        margin_s: float,
    ) -> None:
        self._repository = repository
        self._sender = sender
        self._metrics = metrics
        self._margin_s = margin_s

    async def media_ids(self, request: NotifyRequest, progress: Progress) -> dict[str, str]:
        """The media_id of every inline file of ``request``, pinned into its record.

        Raises:
            Failed: an upload failed.
            Wait: another delivery took the claim over meanwhile.
        """
        uploads = inline_media(request)
        claim = progress.claim
        media_ids = dict(claim.record.media_ids)
        for upload in uploads:
            if upload.key in media_ids:
                continue
            cached = await self._repository.get_media(request.corp_id, upload.key)
            if cached is None:
                cached = await guard(self._sender.upload(request.corp_id, upload))
                await self._repository.put_media(
                    request.corp_id, upload.key, cached, self._margin_s
                )
                self._metrics.media.labels("uploaded").inc()
            else:
                self._metrics.media.labels("cached").inc()
            media_ids[upload.key] = cached
        if media_ids == claim.record.media_ids:
            return media_ids
        if not await progress.write(
            self._repository, lambda record: replace(record, media_ids=media_ids)
        ):
            raise Wait("claim_lost")
        return media_ids
