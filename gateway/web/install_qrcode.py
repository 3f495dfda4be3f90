"""The app's install QR code for ``GET /install/qrcode`` (protocol doc §8.11): fetched from
WeCom's ``service/get_app_qrcode``, cached, and never fetched twice at once (single flight, as
tokens are).

WeCom's QR code is the only channel to promote an individual developer's app (it is not in
the app market, §13.3); it exists only once the app is released. The code for one ``state``
does not change, so a fetched image is kept for ``ttl_s`` and then fetched afresh (in case the
app's QR style changed in the developer centre).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import aiohttp
import structlog

from shared.tokens import TokensClient
from shared.wecom.api import WeComClient, WeComUnavailable, with_token

log = structlog.get_logger(__name__)

GET_APP_QRCODE: Final = "/cgi-bin/service/get_app_qrcode"
# §8.11: a-zA-Z0-9, at most 32 bytes (WeCom's rule, stricter than the install link's).
QR_STATE_PATTERN: Final = re.compile(r"^[A-Za-z0-9]{0,32}\Z")
QR_TTL_S: Final = 6 * 3600.0
MAX_IMAGE_BYTES: Final = 4 * 1024 * 1024  # the largest style is ~2000×2500 px
_RESULT_URL: Final = 2  # result_type 2: a JSON answer (errcode checked) with the image URL


class AppQrCodes:
    """The app's QR code per ``state``, cached for ``ttl_s``, one fetch at a time each."""

    def __init__(
        self,
        wecom: WeComClient,
        tokens: TokensClient,
        suite_id: str,
        *,
        ttl_s: float = QR_TTL_S,
        max_states: int = 64,
        timeout_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wecom = wecom
        self._tokens = tokens
        self._suite_id = suite_id
        self._ttl_s = ttl_s
        self._max_states = max_states
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._monotonic = monotonic
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[bytes]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.fetches = 0  # WeCom calls made (a test and an operator can see the cache work)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def png(self, app_state: str = "") -> bytes:
        """The PNG for ``app_state`` (see :data:`QR_STATE_PATTERN`).

        Raises:
            WeComApiError: WeCom refused (the app is not released yet, typically).
            WeComUnavailable, ServiceError: no answer, or no suite token.
        """
        cached = self._cache.get(app_state)
        if cached is not None and self._monotonic() - cached[1] < self._ttl_s:
            self._cache.move_to_end(app_state)
            return cached[0]
        task = self._inflight.get(app_state)
        if task is None:
            # The first caller fetches; the others await the same task (single flight).
            task = asyncio.ensure_future(self._fetch(app_state))
            self._inflight[app_state] = task
            task.add_done_callback(lambda _: self._inflight.pop(app_state, None))
        return await asyncio.shield(task)

    async def _fetch(self, app_state: str) -> bytes:
        async def call(suite_token: str) -> dict[str, object]:
            return await self._wecom.post(
                GET_APP_QRCODE,
                params={"suite_access_token": suite_token},
                body={"suite_id": self._suite_id, "state": app_state, "result_type": _RESULT_URL},
            )

        self.fetches += 1
        answer = await with_token(self._tokens.source("suite"), call)
        url = answer.get("qrcode")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise WeComUnavailable(
                "get_app_qrcode answered without a qrcode URL", maybe_delivered=True
            )
        image = await self._download(url)
        self._cache[app_state] = (image, self._monotonic())
        self._cache.move_to_end(app_state)
        while len(self._cache) > self._max_states:
            self._cache.popitem(last=False)
        log.info("app_qrcode_fetched", app_state=app_state or None, bytes=len(image))
        return image

    async def _download(self, url: str) -> bytes:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(url) as response:
                if response.status != 200:
                    raise WeComUnavailable(
                        f"the QR code image answered HTTP {response.status}", maybe_delivered=True
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(65_536):
                    size += len(chunk)
                    if size > MAX_IMAGE_BYTES:
                        raise WeComUnavailable(
                            "the QR code image is too large", maybe_delivered=True
                        )
                    chunks.append(chunk)
                image = b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WeComUnavailable(
                f"the QR code image failed: {type(exc).__name__}", maybe_delivered=True
            ) from None
        if len(image) > MAX_IMAGE_BYTES or not image.startswith(b"\x89PNG\r\n\x1a\n"):
            raise WeComUnavailable("the QR code image is not a PNG", maybe_delivered=True)
        return image
