"""Callback delivery as WeCom does it: sealed XML POSTed to the app's URLs, with retries.

Protocol doc §4: WeCom waits 5 s for an answer and otherwise sends the same callback again;
for ``create_auth``, ``change_auth`` and ``cancel_auth`` it waits only 1000 ms (§5.2).
An instruction callback counts as delivered only when the receiver answers HTTP 200 with the
literal body ``success``; a data callback when it answers HTTP 200. Every attempt is recorded
in the state, so tests can see what a receiver went through.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

import aiohttp
import structlog

from shared.wecom.crypto import CallbackCipher
from shared.wecom.sealing import SealedCallback, seal_callback
from simulator.callback_xml import Field as XmlField
from simulator.callback_xml import instruction_xml
from simulator.state import Clock, DeliveryAttempt, SimulatorState

log = structlog.get_logger(__name__)

Route = Literal["command", "data"]

# Protocol doc §2.4: callbacks of an individual-developer (个人主体) app carry an empty
# receiveid, which is what this product serves.
RECEIVE_ID = ""


def _cdata(value: str) -> str:
    if "]]>" in value:
        raise ValueError("a CDATA value cannot contain ']]>'")
    return f"<![CDATA[{value}]]>"


def suite_ticket_xml(suite_id: str, ticket: str, timestamp: int) -> bytes:
    """The decrypted body of a ``suite_ticket`` instruction callback (protocol doc §5.1)."""
    return (
        f"<xml><SuiteId>{_cdata(suite_id)}</SuiteId>"
        f"<InfoType>{_cdata('suite_ticket')}</InfoType>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<SuiteTicket>{_cdata(ticket)}</SuiteTicket></xml>"
    ).encode()


# The install callbacks whose answer WeCom awaits only 1000 ms (protocol doc §5.2).
INSTALL_KINDS = frozenset({"create_auth", "change_auth", "cancel_auth"})


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How long to wait for a receiver and how often to try again."""

    timeout_s: float = 5.0
    retries: int = 3
    retry_delay_s: float = 1.0
    install_timeout_s: float = 1.0

    def timeout_for(self, kind: str) -> float:
        """The wait for an answer to a callback of ``kind``: an install callback's deadline
        is the shorter one, and never longer than the general one (tests shrink that)."""
        if kind in INSTALL_KINDS:
            return min(self.install_timeout_s, self.timeout_s)
        return self.timeout_s


class CallbackPusher:
    """Seals callbacks with the app's Token and EncodingAESKey and delivers them."""

    def __init__(
        self,
        state: SimulatorState,
        *,
        cipher: CallbackCipher,
        token: str,
        suite_id: str,
        urls: dict[Route, str | None],
        policy: DeliveryPolicy,
        clock: Clock = time.time,
    ) -> None:
        self._state = state
        self._cipher = cipher
        self._token = token
        self._suite_id = suite_id
        self._urls = urls
        self._policy = policy
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self._policy.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def push_suite_ticket(self, ticket: str) -> bool:
        """Deliver a ``suite_ticket`` callback; False when no command URL is configured."""
        plaintext = suite_ticket_xml(self._suite_id, ticket, int(self._clock()))
        return await self.deliver("suite_ticket", "command", plaintext, to_user_name=self._suite_id)

    async def push_instruction(self, info_type: str, *fields: XmlField) -> bool:
        """Deliver an instruction callback of ``info_type`` with its own fields (§5)."""
        plaintext = instruction_xml(self._suite_id, info_type, int(self._clock()), *fields)
        return await self.deliver(info_type, "command", plaintext, to_user_name=self._suite_id)

    async def deliver(
        self, kind: str, route: Route, plaintext: bytes, *, to_user_name: str, agent_id: str = ""
    ) -> bool:
        """Send one callback until the receiver accepts it or the retries run out."""
        url = self._urls.get(route)
        if url is None:
            log.info("callback_not_configured", kind=kind, route=route)
            return False
        # WeCom re-sends the same callback: one seal, the same signature on every attempt.
        sealed = seal_callback(
            self._cipher,
            self._token,
            plaintext,
            RECEIVE_ID,
            timestamp=int(self._clock()),
            to_user_name=to_user_name,
            agent_id=agent_id,
        )
        attempts = self._policy.retries + 1
        for attempt in range(1, attempts + 1):
            if await self._attempt(kind, route, url, sealed, attempt):
                return True
            if attempt < attempts and self._policy.retry_delay_s > 0:
                await asyncio.sleep(self._policy.retry_delay_s)
        log.warning("callback_undelivered", kind=kind, route=route, attempts=attempts)
        return False

    async def _attempt(
        self, kind: str, route: Route, url: str, sealed: SealedCallback, attempt: int
    ) -> bool:
        if self._session is None:
            raise RuntimeError("the callback pusher is not open")
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        ok = False
        try:
            async with self._session.post(
                url,
                params=sealed.query,
                data=sealed.body,
                headers={"Content-Type": "text/xml"},
                timeout=aiohttp.ClientTimeout(total=self._policy.timeout_for(kind)),
            ) as response:
                status = response.status
                body = await response.text()
            ok, error = judge_answer(route, status, body)
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = type(exc).__name__
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        self._state.record_delivery(
            DeliveryAttempt(kind, route, url, attempt, status, ok, latency_ms, error)
        )
        log.info(
            "callback_attempt",
            kind=kind,
            route=route,
            attempt=attempt,
            status=status,
            ok=ok,
            error=error,
            latency_ms=latency_ms,
        )
        return ok


def judge_answer(route: Route, status: int, body: str) -> tuple[bool, str | None]:
    """Whether WeCom would count this answer as delivered, and why not."""
    if status != 200:
        return False, f"http_{status}"
    if route == "command" and body.strip() != "success":
        # WeCom reads any other body of an instruction callback as an error message.
        return False, "not_success"
    return True, None


async def push_fresh_ticket(state: SimulatorState, pusher: CallbackPusher) -> tuple[str, bool]:
    """Issue a new suite_ticket and push it; returns the ticket and whether it arrived."""
    ticket = state.issue_suite_ticket()
    return ticket, await pusher.push_suite_ticket(ticket)


async def run_ticket_schedule(
    state: SimulatorState, pusher: CallbackPusher, *, interval_s: float, push_at_start: bool
) -> None:
    """Push a fresh suite_ticket every ``interval_s`` until cancelled (protocol doc §4)."""
    if not push_at_start:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await push_fresh_ticket(state, pusher)
        except Exception:
            # One failed push must not end the schedule; WeCom keeps pushing too.
            log.exception("suite_ticket_push_failed")
        await asyncio.sleep(interval_s)
