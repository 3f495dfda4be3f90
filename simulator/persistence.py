"""The simulator's state on disk: one versioned JSON file, loaded at start, saved after changes.

``wecom-suite run`` in sandbox mode keeps it in ``DATA_DIR/simulator-state.json`` (a standalone
simulator with ``SIM_STATE_FILE``), so a restart still knows the corps, members, codes, tokens
and sent messages it had: what the services' store remembers stays true (docs/simulator.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, Literal

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, Field, ValidationError

from shared.http import Handler
from simulator.installs import AuthCode, Corp
from simulator.media import Media
from simulator.messages import SentMessage
from simulator.oauth import SignIn
from simulator.state import SimulatorState
from simulator.state_types import Issued

log = structlog.get_logger(__name__)

FORMAT_VERSION: Final = 1
SAVE_INTERVAL_S: Final = 1.0
"""At most one write per second: a burst of sends costs one write, not one per send."""

# Requests that only read the state; every other request may change it (a WeCom call uses up a
# code, a page issues one, a control call installs), so it schedules a save.
_READS: Final = frozenset(
    {"/_sim/calls", "/_sim/deliveries", "/_sim/sent", "/healthz", "/readyz", "/metrics"}
)

RandomState = tuple[int, tuple[int, ...], float | None]
"""``random.Random.getstate()`` of a seeded simulator, so values are not drawn twice."""


class StateFileError(Exception):
    """The state file cannot be used; the message says why (never its content)."""


class SavedOutbox(BaseModel):
    """What ``message/send`` left behind, and the history its limits and duplicates need."""

    sent: list[SentMessage] = Field(default_factory=list)
    response_codes: dict[str, tuple[str, float]] = Field(default_factory=dict)
    # (corp, agent, member, delivery times) and (corp, agent, member, content, last time).
    delivered_at: list[tuple[str, int, str, list[float]]] = Field(default_factory=list)
    last_content: list[tuple[str, int, str, str, float]] = Field(default_factory=list)
    # (corp, agent, natural day, person-times used that day).
    day_used: list[tuple[str, int, int, int]] = Field(default_factory=list)


class SavedState(BaseModel):
    """Version 1 of the file. Calls, faults and deliveries are diagnostics: not kept."""

    version: Literal[1] = FORMAT_VERSION
    saved_at: float
    suite_id: str
    seed: int | None = None
    random_state: RandomState | None = None
    latest_ticket: Issued | None = None
    suite_tokens: list[Issued] = Field(default_factory=list)
    provider_tokens: list[Issued] = Field(default_factory=list)
    pre_auth_codes: list[Issued] = Field(default_factory=list)
    session_auth_types: dict[str, int] = Field(default_factory=dict)
    corps: list[Corp] = Field(default_factory=list)
    auth_codes: list[AuthCode] = Field(default_factory=list)
    corp_tokens: list[tuple[str, Issued]] = Field(default_factory=list)
    oauth_codes: list[tuple[SignIn, Issued]] = Field(default_factory=list)
    user_tickets: list[tuple[SignIn, Issued]] = Field(default_factory=list)
    media: list[Media] = Field(default_factory=list)
    outbox: SavedOutbox = Field(default_factory=SavedOutbox)


class _Header(BaseModel):
    version: int


def snapshot(state: SimulatorState, *, now: float | None = None) -> SavedState:
    """Everything of ``state`` a restart needs, as the file's model."""
    installs, outbox = state.installs, state.outbox
    random_state: RandomState | None = None
    if state.seed is not None:
        random_state = state._random.getstate()  # seeded: a plain random.Random
    return SavedState(
        saved_at=time.time() if now is None else now,
        suite_id=state.credentials.suite_id,
        seed=state.seed,
        random_state=random_state,
        latest_ticket=state.latest_ticket,
        suite_tokens=list(state.suite_tokens.values()),
        provider_tokens=list(state.provider_tokens.values()),
        pre_auth_codes=list(state.pre_auth_codes.values()),
        session_auth_types=dict(state.session_auth_types),
        corps=list(installs.corps.values()),
        auth_codes=list(installs.auth_codes.values()),
        corp_tokens=list(installs.corp_tokens.values()),
        oauth_codes=list(state.oauth.codes.values()),
        user_tickets=list(state.oauth.tickets.values()),
        media=list(state.media.items.values()),
        outbox=SavedOutbox(
            sent=list(outbox.sent),
            response_codes=dict(outbox.response_codes),
            # The outbox's own history, read here because this module is its serializer.
            delivered_at=[(*key, list(times)) for key, times in outbox._delivered_at.items()],
            last_content=[(*key, at) for key, at in outbox._last_content.items()],
            day_used=[(*app, *used) for app, used in outbox._day_used.items()],
        ),
    )


def restore(state: SimulatorState, saved: SavedState) -> None:
    """Replace everything ``state`` remembers by ``saved`` (which must be this suite's)."""
    if saved.suite_id != state.credentials.suite_id:
        raise StateFileError(f"it belongs to suite {saved.suite_id!r}")
    state.reset()
    if saved.random_state is not None and state.seed is not None and saved.seed == state.seed:
        # Go on where the seeded generator stopped, so no value is drawn a second time.
        state._random.setstate(saved.random_state)
    state.latest_ticket = saved.latest_ticket
    state.suite_tokens.update((token.value, token) for token in saved.suite_tokens)
    state.provider_tokens.update((token.value, token) for token in saved.provider_tokens)
    state.pre_auth_codes.update((code.value, code) for code in saved.pre_auth_codes)
    state.session_auth_types.update(saved.session_auth_types)
    installs = state.installs
    installs.corps.update((corp.corp_id, corp) for corp in saved.corps)
    # Codes and tokens of a corp the file does not hold would fail later, as a KeyError.
    known = installs.corps
    installs.auth_codes.update(
        (code.issued.value, code) for code in saved.auth_codes if code.corp_id in known
    )
    installs.corp_tokens.update(
        (issued.value, (corp_id, issued))
        for corp_id, issued in saved.corp_tokens
        if corp_id in known
    )
    state.oauth.codes.update((issued.value, (who, issued)) for who, issued in saved.oauth_codes)
    state.oauth.tickets.update((issued.value, (who, issued)) for who, issued in saved.user_tickets)
    state.media.items.update((media.media_id, media) for media in saved.media)
    outbox, kept = state.outbox, saved.outbox
    for message in kept.sent:
        outbox.sent.append(message)
        outbox.by_msgid[message.msgid] = message
    outbox.response_codes.update(
        (code, entry) for code, entry in kept.response_codes.items() if entry[0] in outbox.by_msgid
    )
    delivered: defaultdict[tuple[str, int, str], deque[float]] = defaultdict(deque)
    for corp_id, agent_id, user, times in kept.delivered_at:
        delivered[(corp_id, agent_id, user)].extend(times)
    outbox._delivered_at = delivered
    outbox._last_content.update(
        ((corp_id, agent_id, user, content), at)
        for corp_id, agent_id, user, content, at in kept.last_content
    )
    outbox._day_used.update(
        ((corp_id, agent_id), (day, used)) for corp_id, agent_id, day, used in kept.day_used
    )


def encode(saved: SavedState) -> bytes:
    """The file's bytes."""
    return saved.model_dump_json().encode()


def decode(data: bytes) -> SavedState:
    """The saved state in ``data``; StateFileError when it is not a file this version reads."""
    try:
        version = _Header.model_validate_json(data).version
    except ValidationError:
        raise StateFileError("it is not a simulator state file (bad JSON or no version)") from None
    if version != FORMAT_VERSION:
        raise StateFileError(f"its format version {version} is not {FORMAT_VERSION}")
    try:
        return SavedState.model_validate_json(data)
    except ValidationError as exc:
        # Field locations only: pydantic's messages would quote the values (codes, tokens).
        where = sorted({".".join(map(str, error["loc"])) for error in exc.errors()})[:3]
        raise StateFileError(f"it has invalid fields ({', '.join(where)})") from None


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so a reader (or a crash) sees the old or the new file whole.

    A private temporary file in the same directory (0600 from creation), flushed to disk,
    then renamed over ``path``; the directory is synced so the rename itself survives a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class StatePersistence:
    """Loads ``state`` from ``path`` and saves it there, at most every ``interval_s``.

    Requests that may change the state mark it changed (:meth:`middleware`); a background
    task writes the file when something changed (or the scheduled suite_ticket did), and the
    app's cleanup writes it a last time. Writes run in one worker thread, in order, so the
    event loop never waits for the disk and the newest snapshot is always the last written.
    """

    def __init__(
        self, state: SimulatorState, path: Path, *, interval_s: float = SAVE_INTERVAL_S
    ) -> None:
        self.state = state
        self.path = path
        self._interval_s = interval_s
        self._changes = 0
        self._saved_changes = 0
        self._saved_ticket: Issued | None = None
        self._failing = False
        self._writer: ThreadPoolExecutor | None = None

    def load(self) -> bool:
        """Restore the state from the file; True if it did.

        A missing file is a fresh start; an unreadable, corrupt, other-suite or future-version
        file is logged at warning, moved aside to ``<name>.unreadable`` (so nothing newer is
        overwritten) and the simulator starts empty.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            log.info("simulator_state_new", path=str(self.path))
            return False
        except OSError as exc:
            self._set_aside(f"it cannot be read ({type(exc).__name__})")
            return False
        try:
            restore(self.state, decode(data))
        except StateFileError as exc:
            self.state.reset()
            self._set_aside(str(exc))
            return False
        self._saved_ticket = self.state.latest_ticket
        installs = self.state.installs
        log.info(
            "simulator_state_loaded",
            path=str(self.path),
            corps=len(installs.corps),
            installed_corps=sum(1 for c in installs.corps.values() if c.installed_members),
            sent=len(self.state.outbox.sent),
        )
        return True

    def _set_aside(self, reason: str) -> None:
        aside = self.path.with_name(self.path.name + ".unreadable")
        try:
            self.path.replace(aside)
        except OSError:
            aside_text = None
        else:
            aside_text = str(aside)
        log.warning(
            "simulator_state_unreadable",
            path=str(self.path),
            reason=reason,
            moved_to=aside_text,
            hint="the simulator starts empty; run `wecom-suite demo` or install again",
        )

    def mark_changed(self) -> None:
        """Something that matters may have changed: save within ``interval_s``."""
        self._changes += 1

    @property
    def middleware(self) -> Middleware:
        """An aiohttp middleware marking the state changed after every request that may."""

        @web.middleware
        async def mark_after(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            finally:
                # After the handler, also when the client went away: its effect is real.
                if request.method not in ("GET", "HEAD") or request.path not in _READS:
                    self.mark_changed()

        return mark_after

    def _needs_save(self) -> bool:
        return (
            self._changes != self._saved_changes
            or self.state.latest_ticket is not self._saved_ticket
        )

    async def save(self) -> bool:
        """Write the state now (in the writer thread); False, logged, if the disk refused."""
        changes, ticket = self._changes, self.state.latest_ticket
        data = encode(snapshot(self.state))
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sim-state")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._writer, write_atomically, self.path, data)
        except OSError as exc:
            if not self._failing:  # once per failure spell, not once a second
                log.warning(
                    "simulator_state_not_saved", path=str(self.path), error=type(exc).__name__
                )
            self._failing = True
            return False
        if self._failing:
            log.info("simulator_state_saved_again", path=str(self.path))
        self._failing = False
        self._saved_changes, self._saved_ticket = changes, ticket
        return True

    async def run(self) -> None:
        """Save every ``interval_s`` while something changed, until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            if self._needs_save():
                await self.save()

    async def close(self) -> None:
        """A last save (when needed), after any write still in flight."""
        if self._needs_save():
            await self.save()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    async def lifetime(self, _: web.Application) -> AsyncIterator[None]:
        """The app's cleanup context: the save loop while serving, a last save on shutdown."""
        saving = asyncio.create_task(self.run(), name="simulator-state-saver")
        try:
            yield
        finally:
            saving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saving
            await self.close()
