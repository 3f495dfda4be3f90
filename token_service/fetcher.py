"""The WeCom calls that mint tokens and tickets (protocol doc §8.1, §8.2, §8.8, §8.10, §10.1).

Each function takes what the call needs and returns a :class:`CachedToken`; errors are the
typed ones of :mod:`shared.wecom.api`. Nothing here caches, locks or retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import SecretStr

from shared.wecom.api import WeComClient, WeComUnavailable
from token_service.domain import CachedToken, token_from_answer


class Fetcher(Protocol):
    """What the manager needs to mint tokens (tests substitute a fake WeCom)."""

    @property
    def has_provider_credentials(self) -> bool: ...

    async def suite_token(self, suite_ticket: str) -> CachedToken: ...
    async def provider_token(self) -> CachedToken: ...
    async def corp_token(
        self, suite_token: str, corp_id: str, permanent_code: str
    ) -> CachedToken: ...
    async def jsapi_ticket(self, corp_token: str) -> CachedToken: ...
    async def agent_ticket(self, corp_token: str) -> CachedToken: ...
    async def pre_auth_code(self, suite_token: str) -> CachedToken: ...


class TokenFetcher:
    """Mints tokens through one :class:`WeComClient`."""

    def __init__(
        self,
        client: WeComClient,
        *,
        suite_id: str,
        suite_secret: SecretStr,
        provider_corpid: str | None,
        provider_secret: SecretStr | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._suite_id = suite_id
        self._suite_secret = suite_secret
        self._provider_corpid = provider_corpid
        self._provider_secret = provider_secret
        self._clock = clock

    @property
    def has_provider_credentials(self) -> bool:
        return self._provider_corpid is not None and self._provider_secret is not None

    def _token(self, path: str, answer: dict[str, Any], field: str) -> CachedToken:
        try:
            return token_from_answer(answer.get(field), answer.get("expires_in"), now=self._clock())
        except ValueError as exc:
            raise WeComUnavailable(
                f"WeCom {path} answered without a usable {field}: {exc}", maybe_delivered=True
            ) from None

    async def suite_token(self, suite_ticket: str) -> CachedToken:
        path = "/cgi-bin/service/get_suite_token"
        answer = await self._client.post(
            path,
            body={
                "suite_id": self._suite_id,
                "suite_secret": self._suite_secret.get_secret_value(),
                "suite_ticket": suite_ticket,
            },
        )
        return self._token(path, answer, "suite_access_token")

    async def provider_token(self) -> CachedToken:
        if self._provider_corpid is None or self._provider_secret is None:
            raise RuntimeError("provider credentials are not configured")
        path = "/cgi-bin/service/get_provider_token"
        answer = await self._client.post(
            path,
            body={
                "corpid": self._provider_corpid,
                "provider_secret": self._provider_secret.get_secret_value(),
            },
        )
        return self._token(path, answer, "provider_access_token")

    async def corp_token(self, suite_token: str, corp_id: str, permanent_code: str) -> CachedToken:
        path = "/cgi-bin/service/get_corp_token"
        answer = await self._client.post(
            path,
            params={"suite_access_token": suite_token},
            body={"auth_corpid": corp_id, "permanent_code": permanent_code},
        )
        return self._token(path, answer, "access_token")

    async def jsapi_ticket(self, corp_token: str) -> CachedToken:
        path = "/cgi-bin/get_jsapi_ticket"
        answer = await self._client.get(path, params={"access_token": corp_token})
        return self._token(path, answer, "ticket")

    async def agent_ticket(self, corp_token: str) -> CachedToken:
        path = "/cgi-bin/ticket/get"
        answer = await self._client.get(
            path, params={"access_token": corp_token, "type": "agent_config"}
        )
        return self._token(path, answer, "ticket")

    async def pre_auth_code(self, suite_token: str) -> CachedToken:
        path = "/cgi-bin/service/get_pre_auth_code"
        answer = await self._client.get(path, params={"suite_access_token": suite_token})
        return self._token(path, answer, "pre_auth_code")
