"""The async WeCom API client every service uses, and the typed errors WeCom's answers map to.

WeCom answers almost everything with HTTP 200 and an ``errcode`` (protocol doc §1.2, §12);
this client turns each non-zero ``errcode`` into one exception class that says what a caller
should do about it: refresh a token, wait and retry, or stop and tell the operator. Network
failures, timeouts and 5xx answers are :class:`WeComUnavailable`. Tokens travel in the query
string (§1.2) and so never appear in a log line: only the path is logged.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Final, TypeVar

import aiohttp
import structlog
from tenacity import retry_if_exception_type

from shared.backoff import Backoff, RetryCallState
from shared.errors import ServiceError

log = structlog.get_logger(__name__)

DEFAULT_API_BASE: Final = "https://qyapi.weixin.qq.com"
T = TypeVar("T")


class WeComApiError(ServiceError):
    """WeCom answered with a non-zero ``errcode``. ``errmsg`` is for humans only (§1.2)."""

    code = "wecom_error"
    status = 502
    reason = "WeCom refused the call"

    def __init__(self, errcode: int, errmsg: str, path: str) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        super().__init__(f"WeCom {path} answered errcode {errcode}: {_short(errmsg)}")


class WeComTokenRejected(WeComApiError):
    """The access token, suite token or ticket was invalid or expired: refresh once and retry
    once (40014, 40082, 42001, 42009, 42012 and kin)."""

    code = "wecom_token_rejected"
    retryable = True
    reason = "WeCom rejected the token"


class WeComCredentialError(WeComApiError):
    """A configured credential is wrong or void: no retry helps until an operator (or WeCom's
    next suite_ticket push, or a re-install) fixes it."""

    code = "wecom_credential_invalid"
    reason = "WeCom rejected a configured credential"

    # What the operator must do, by errcode; logged next to the error.
    HINTS: ClassVar[dict[int, str]] = {
        40001: "the secret is wrong or was reset: update it in the configuration",
        40013: "the corp id is wrong: use the one the auth APIs returned",
        40080: "WECOM_SUITE_SECRET is wrong or was reset in the developer centre",
        40083: "WECOM_SUITE_ID is wrong",
        40084: "the corp's permanent code is void (app uninstalled, or code reset): the corp "
        "must re-install",
        40085: "the suite_ticket is invalid or expired: WeCom pushes a new one every 10 "
        "minutes; check that the instruction callback URL is reachable, or push one from the "
        "developer centre",
        84005: "the third-party app is not found: check WECOM_SUITE_ID",
    }

    @property
    def hint(self) -> str:
        return self.HINTS.get(self.errcode, "check the app's credentials")


class WeComIpNotAllowed(WeComApiError):
    """60020: the caller's IP is not on the app's IP allow-list (§1.2)."""

    code = "wecom_ip_not_allowed"
    reason = "WeCom refused this server's IP address"

    @property
    def ip(self) -> str | None:
        """The egress IP WeCom saw, when its errmsg names it (``from ip: 1.2.3.4``)."""
        match = _IP_IN_ERRMSG.search(self.errmsg)
        return match.group(1) if match else None


class WeComBusy(WeComApiError):
    """-1 (system busy): blind-retryable with backoff (§12)."""

    code = "wecom_busy"
    retryable = True
    reason = "WeCom is busy"


class WeComRateLimited(WeComApiError):
    """45009 / 45033: a frequency or concurrency limit; back off, never hot-loop (§11.7)."""

    code = "wecom_rate_limited"
    retryable = True
    reason = "WeCom's rate limit was hit"


class WeComUnavailable(ServiceError):
    """No usable answer: connection refused or reset, timeout, 5xx, or a body that is not JSON.

    ``maybe_delivered`` is True when the request may have reached WeCom before the failure
    (a timeout or a dropped connection after sending): a caller whose call has an effect
    (message/send) must only retry it in a way that cannot apply the effect twice.
    """

    code = "wecom_unavailable"
    status = 503
    retryable = True
    reason = "WeCom could not be reached"

    def __init__(self, message: str, *, maybe_delivered: bool) -> None:
        self.maybe_delivered = maybe_delivered
        super().__init__(message)


_IP_IN_ERRMSG = re.compile(r"from ip:\s*([0-9A-Fa-f.:]+)")
_TOKEN_ERRCODES: Final = frozenset({40014, 40082, 42001, 42009, 42012})
_CREDENTIAL_ERRCODES: Final = frozenset(WeComCredentialError.HINTS)
_RATE_ERRCODES: Final = frozenset({45009, 45033})


def error_for(errcode: int, errmsg: str, path: str) -> WeComApiError:
    """The exception class for a non-zero ``errcode`` (protocol doc §12)."""
    if errcode == -1:
        return WeComBusy(errcode, errmsg, path)
    if errcode in _TOKEN_ERRCODES:
        return WeComTokenRejected(errcode, errmsg, path)
    if errcode in _CREDENTIAL_ERRCODES:
        return WeComCredentialError(errcode, errmsg, path)
    if errcode == 60020:
        return WeComIpNotAllowed(errcode, errmsg, path)
    if errcode in _RATE_ERRCODES:
        return WeComRateLimited(errcode, errmsg, path)
    return WeComApiError(errcode, errmsg, path)


def _raise_for_errcode(errcode: object, errmsg: object, path: str) -> None:
    # get_corp_token and get_permanent_code may omit errcode on success (§1.2).
    if errcode in (0, None):
        return
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        raise WeComUnavailable(f"WeCom {path} answered a non-numeric errcode", maybe_delivered=True)
    raise error_for(errcode, str(errmsg or ""), path)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# Called after each call with (path, outcome, seconds); services feed their metrics from it.
CallObserver = Callable[[str, str, float], None]


class WeComClient:
    """One aiohttp session to WeCom's API at ``base_url``.

    ``call`` returns the decoded JSON object of a successful answer and raises one of the
    errors above otherwise. It never retries by itself: whether a retry is safe depends on
    the call (a token fetch may be repeated, a message send may not), so callers decide.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_BASE,
        *,
        timeout_s: float = 10.0,
        observer: CallObserver | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0))
        self._observer = observer
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session must be made inside the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"User-Agent": "wecom-suite"},
                raise_for_status=False,
            )
        return self._session

    async def get(self, path: str, *, params: Mapping[str, str | int]) -> dict[str, Any]:
        return await self.call("GET", path, params=params)

    async def post(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        data: aiohttp.FormData | None = None,
    ) -> dict[str, Any]:
        return await self.call("POST", path, params=params, body=body, data=data)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        data: aiohttp.FormData | None = None,
    ) -> dict[str, Any]:
        """One API call; ``path`` is like ``/cgi-bin/service/get_suite_token``.

        Raises:
            WeComApiError: (a subclass of) WeCom's non-zero errcode.
            WeComUnavailable: no usable answer.
        """
        started = time.perf_counter()
        outcome = "unavailable"
        try:
            answer = await self._exchange(method, path, params, body, data)
            errcode = answer.get("errcode", 0)
            outcome = "ok" if errcode in (0, None) else f"errcode_{errcode}"
            _raise_for_errcode(errcode, answer.get("errmsg"), path)
        except WeComUnavailable as exc:
            log.warning("wecom_call_failed", path=path, error=exc.message)
            raise
        else:
            return answer
        finally:
            if self._observer is not None:
                self._observer(path, outcome, time.perf_counter() - started)

    async def _exchange(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
        data: aiohttp.FormData | None,
    ) -> dict[str, Any]:
        url = self.base_url + path
        try:
            # A real JSON encoder, UTF-8 unescaped (§1.2: WeCom accepts raw UTF-8).
            payload = (
                json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
            )
            headers = {"Content-Type": "application/json"} if payload is not None else None
            async with self._get_session().request(
                method,
                url,
                params=dict(params) if params else None,
                data=payload if payload is not None else data,
                headers=headers,
            ) as response:
                raw = await response.read()
                if response.status >= 500:
                    raise WeComUnavailable(
                        f"WeCom {path} answered HTTP {response.status}", maybe_delivered=True
                    )
                if response.status != 200:
                    raise WeComUnavailable(
                        f"WeCom {path} answered HTTP {response.status}", maybe_delivered=False
                    )
        except aiohttp.ClientConnectorError as exc:
            # Never connected: the request cannot have reached WeCom.
            raise WeComUnavailable(
                f"cannot connect to WeCom ({type(exc).__name__})", maybe_delivered=False
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WeComUnavailable(
                f"WeCom {path} failed: {type(exc).__name__}", maybe_delivered=True
            ) from None
        try:
            answer = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise WeComUnavailable(
                f"WeCom {path} answered something that is not JSON", maybe_delivered=True
            ) from None
        if not isinstance(answer, dict):
            raise WeComUnavailable(
                f"WeCom {path} answered JSON that is not an object", maybe_delivered=True
            )
        return answer


# Gets a token; with ``stale`` set, a token the caller saw WeCom reject, so the provider
# refreshes it unless it has already moved on to a newer one.
TokenSource = Callable[[str | None], Awaitable[str]]


async def with_token(source: TokenSource, call: Callable[[str], Awaitable[T]]) -> T:
    """Run ``call`` with a token; if WeCom rejects the token, get a fresh one and retry once.

    Exactly one retry (protocol doc §12: "refresh once, retry once"): a second rejection is
    not a stale token but a wrong kind or a broken credential, and raises.
    """
    token = await source(None)
    try:
        return await call(token)
    except WeComTokenRejected:
        log.info("wecom_token_rejected_retrying")
    fresh = await source(token)
    return await call(fresh)


TRANSIENT_BACKOFF: Final = Backoff(initial_s=0.2, factor=2.5, cap_s=1.0, max_attempts=4)
"""Three retries of a blind-retryable WeCom call, 0.2 s, 0.5 s and 1 s apart."""


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: Backoff = TRANSIENT_BACKOFF,
    deadline: float | None = None,
) -> T:
    """Run ``operation``; on a blind-retryable failure (-1, network, 5xx) wait and retry.

    Only for calls that are safe to repeat (token and ticket fetches). Stops early when the
    next wait would pass ``deadline`` (a ``time.monotonic()`` value).

    Args:
        operation: one call to WeCom.
        policy: the waits and the number of tries.
        deadline: give up rather than wait past this ``time.monotonic()`` value.

    Raises:
        WeComBusy: the last try's, when the policy or the deadline says stop.
        WeComUnavailable: likewise.
    """
    if deadline is not None:
        policy = replace(policy, deadline_s=deadline - time.monotonic())

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        code = error.code if isinstance(error, ServiceError) else None
        log.info("wecom_call_retrying", error=code, retry_in_s=round(state.upcoming_sleep, 2))

    return await policy.run(
        operation,
        retry=retry_if_exception_type((WeComBusy, WeComUnavailable)),
        before_sleep=before_sleep,
    )
