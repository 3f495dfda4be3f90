"""The callback batcher: one processing call per loop turn, each caller its own outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.callbacks.batching import CallbackBatcher
from gateway.callbacks.processor import AcceptedCallback, CallbackParams
from shared.wecom.errors import SignatureError
from shared.wecom.events import Route

PARAMS = CallbackParams("0" * 40, "1700000000", "n")


class RecordingProcess:
    """Stands in for CallbackProcessor.process: notes which loop turn each call ran in."""

    def __init__(self) -> None:
        self.turns: list[list[bytes]] = []
        self._turn_open = False

    def __call__(
        self, route: Route, params: CallbackParams, body: bytes, *, now: float
    ) -> AcceptedCallback:
        if not self._turn_open:
            self.turns.append([])
            self._turn_open = True
            asyncio.get_running_loop().call_soon(self._close_turn)
        self.turns[-1].append(body)
        if body.startswith(b"bad"):
            raise SignatureError
        return AcceptedCallback(
            body.decode(), route, datetime.fromtimestamp(now, UTC), body, body, "", "empty"
        )

    def _close_turn(self) -> None:
        self._turn_open = False


async def test_callbacks_of_one_turn_are_processed_together_each_getting_its_own() -> None:
    """Callbacks of one loop turn go in one batch, each caller getting its own result."""
    process = RecordingProcess()
    batcher = CallbackBatcher(process)
    bodies = [f"cb{index}".encode() for index in range(20)]
    results = await asyncio.gather(
        *(batcher.process("data", PARAMS, body, now=1.0) for body in bodies)
    )
    assert [result.body for result in results] == bodies
    assert process.turns == [bodies]  # all twenty in one call of the batch
    # A later callback starts a new batch.
    later = await batcher.process("command", PARAMS, b"later", now=2.0)
    assert later.event_type == "command"
    assert process.turns[-1] == [b"later"]


async def test_a_failure_reaches_only_its_own_caller() -> None:
    """A bad callback's error goes to its own caller; the rest of the batch is accepted."""
    batcher = CallbackBatcher(RecordingProcess())
    outcomes = await asyncio.gather(
        batcher.process("data", PARAMS, b"ok1", now=1.0),
        batcher.process("data", PARAMS, b"bad", now=1.0),
        batcher.process("data", PARAMS, b"ok2", now=1.0),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], AcceptedCallback)
    assert outcomes[0].body == b"ok1"
    assert isinstance(outcomes[1], SignatureError)
    assert isinstance(outcomes[2], AcceptedCallback)
    assert outcomes[2].body == b"ok2"


async def test_a_cancelled_caller_is_skipped_and_the_others_still_answered() -> None:
    """A caller cancelled before its batch runs is never processed; the others are."""
    process = RecordingProcess()
    batcher = CallbackBatcher(process)
    gone = asyncio.create_task(batcher.process("data", PARAMS, b"gone", now=1.0))
    kept = asyncio.create_task(batcher.process("data", PARAMS, b"kept", now=1.0))
    await asyncio.sleep(0)  # both queued
    gone.cancel()
    assert (await kept).body == b"kept"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert process.turns == [[b"kept"]]  # the cancelled one was never processed


class Raising:
    """Raises ``error`` for the body b"bad", succeeds otherwise."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __call__(
        self, route: Route, params: CallbackParams, body: bytes, *, now: float
    ) -> AcceptedCallback:
        if body == b"bad":
            raise self.error
        return AcceptedCallback("i", "t", datetime.fromtimestamp(now, UTC), body, body, "", "empty")


@pytest.mark.parametrize(
    ("error", "seen"),
    [
        (StopIteration(), RuntimeError),  # a future refuses StopIteration itself
        (GeneratorExit(), GeneratorExit),
        (ZeroDivisionError(), ZeroDivisionError),
    ],
)
async def test_an_unusual_failure_still_lets_the_rest_of_the_batch_finish(
    error: BaseException, seen: type[BaseException]
) -> None:
    """Even StopIteration or GeneratorExit from one item leaves the other callers answered."""
    batcher = CallbackBatcher(Raising(error))
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            batcher.process("data", PARAMS, b"ok1", now=1.0),
            batcher.process("data", PARAMS, b"bad", now=1.0),
            batcher.process("data", PARAMS, b"ok2", now=1.0),
            return_exceptions=True,
        ),
        timeout=5,
    )
    assert isinstance(outcomes[1], seen)
    assert [o.body for o in outcomes if isinstance(o, AcceptedCallback)] == [b"ok1", b"ok2"]


async def test_a_rejected_callback_keeps_no_frame_alive() -> None:
    """A bad request's exception carries no traceback: nothing of the batch (bodies, futures)
    stays reachable through it until a garbage collection."""
    batcher = CallbackBatcher(Raising(SignatureError()))
    with pytest.raises(SignatureError) as caught:
        await batcher.process("data", PARAMS, b"bad", now=1.0)
    # Only the frames from here on: the await in this test and the batcher's wait.
    frames = []
    tb = caught.value.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "_settle" not in frames
    assert "__call__" not in frames


def test_an_interrupt_fails_every_callback_it_did_not_reach() -> None:
    """KeyboardInterrupt leaves the batch (and the loop), but no handler is left waiting."""
    loop = asyncio.new_event_loop()
    try:
        batcher = CallbackBatcher(Raising(KeyboardInterrupt()))
        futures = [loop.create_future() for _ in range(3)]
        batcher._pending = [
            ("data", PARAMS, body, 1.0, future)
            for body, future in zip([b"ok", b"bad", b"later"], futures, strict=True)
        ]
        with pytest.raises(KeyboardInterrupt):
            batcher._run()
        assert futures[0].result().body == b"ok"
        for future in futures[1:]:
            assert isinstance(future.exception(), RuntimeError)
    finally:
        loop.close()
