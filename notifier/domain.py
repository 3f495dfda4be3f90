"""The notifier's rules as plain Python: which WeCom failures are retried, the send-limit
window arithmetic, results, and the options that make an ambiguous retry safe.

No aiohttp, aio-pika or store imports here: every function is pure and unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from shared.notify import NotifyOptions, NotifyResult, NotifyStatus

# WeCom's documented maximum duplicate_check_interval (protocol doc §11.1): 4 hours.
MAX_DUPLICATE_INTERVAL_S: Final = 14_400
# A forced duplicate check covers the time already passed since the first send plus this much
# more (the rest of the retry schedule), with room to spare.
DUPLICATE_SLACK_S: Final = 60

FailureKind = Literal["busy", "rate_limited", "unavailable", "token", "permanent"]
_RETRYABLE: Final = frozenset({"busy", "rate_limited", "unavailable"})


# --- Failures ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, as the handler saw it.

    ``maybe_delivered``: the request may have reached WeCom (a timeout or a dropped connection
    after sending), so the message may have been delivered.
    """

    kind: FailureKind
    errcode: int | None
    errmsg: str
    maybe_delivered: bool = False

    @property
    def is_retryable(self) -> bool:
        """-1, network errors, 5xx and rate limits pass by themselves (protocol doc §12);
        everything else is a configuration or data error that no retry fixes."""
        return self.kind in _RETRYABLE


def is_last_attempt(attempts: int, max_attempts: int, *, last_delivery: bool) -> bool:
    """Whether a retryable failure after ``attempts`` WeCom calls ends the request."""
    return last_delivery or attempts >= max_attempts


# --- Results -----------------------------------------------------------------------------------


def failed_result(
    request_id: str, errmsg: str, *, errcode: int | None = None, attempts: int = 0
) -> NotifyResult:
    """A ``failed`` result: a bad request (errcode null, errmsg the precise reason), or
    WeCom's refusal (its errcode and errmsg)."""
    return NotifyResult(
        request_id=request_id, status="failed", errcode=errcode, errmsg=errmsg, attempts=attempts
    )


def _id_list(value: Any) -> list[str]:
    """``"a|b"`` (message/send) or ``["a", "b"]`` (update_template_card) → ``["a", "b"]``."""
    if isinstance(value, str):
        return [item for item in value.split("|") if item]
    if isinstance(value, list):
        return [str(item) for item in value if str(item)]
    return []


def _errcode(answer: Mapping[str, Any]) -> int | None:
    value = answer.get("errcode")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def result_from_wecom_answer(
    request_id: str,
    answer: Mapping[str, Any],
    attempts: int,
    *,
    duplicate_check: bool = False,
    duplicate_users: Sequence[str] = (),
    only_users: Sequence[str] | None = None,
) -> NotifyResult:
    """Map WeCom's answer to the final call of a request onto its result.

    errcode 0 is ``sent``, or ``partial`` when invaliduser/invalidparty/invalidtag/
    unlicenseduser name anyone or the duplicate check held some members back; ``failed``
    when it held back every member (``only_users``: the request went to these users only).
    Any other errcode (81013 "all recipients invalid" included) is ``failed``. An answer with
    no usable errcode is ``failed`` with ``errcode`` null.

    Args:
        request_id: the request's id.
        answer: WeCom's decoded JSON answer.
        attempts: calls made to WeCom for this request, this one included.
        duplicate_check: whether the call went out with WeCom's duplicate check on.
        duplicate_users: members the notifier knows the check held back (lower-cased).
        only_users: the request's users when it had no party, tag or @all; else None.
    """
    errcode = _errcode(answer)
    invalid = {
        "invalid_users": _id_list(answer.get("invaliduser")),
        "invalid_parties": _id_list(answer.get("invalidparty")),
        "invalid_tags": _id_list(answer.get("invalidtag")),
        "unlicensed_users": _id_list(answer.get("unlicenseduser")),
    }
    errmsg = answer.get("errmsg")
    held = [user for user in duplicate_users if user not in invalid["invalid_users"]]
    status: NotifyStatus = "failed"
    if errcode == 0:
        status = "partial" if any(invalid.values()) or held else "sent"
        reached = None
        if only_users is not None:
            gone = set(invalid["invalid_users"]) | set(invalid["unlicensed_users"])
            reached = {user.lower() for user in only_users} - gone
        if held and reached is not None and reached <= set(held):
            status = "failed"
            errmsg = "WeCom's duplicate check held the message back for every recipient"
    if errcode is None and not isinstance(errmsg, str):
        errmsg = "the answer carries no errcode"
    return NotifyResult(
        request_id=request_id,
        status=status,
        msgid=_text(answer.get("msgid")),
        response_code=_text(answer.get("response_code")),
        duplicate_check=duplicate_check,
        errcode=errcode,
        errmsg=errmsg if isinstance(errmsg, str) else None,
        attempts=attempts,
        duplicate_users=held,
        **invalid,
    )


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def expired_result(request_id: str, attempts: int) -> NotifyResult:
    """The result of a request whose deadline passed before WeCom accepted it."""
    return NotifyResult(
        request_id=request_id,
        status="expired",
        errmsg="the deadline passed before the message was sent",
        attempts=attempts,
    )


def result_of_failure(request_id: str, failure: Failure, attempts: int) -> NotifyResult:
    return failed_result(request_id, failure.errmsg, errcode=failure.errcode, attempts=attempts)


def is_final(status: NotifyStatus) -> bool:
    return status in ("sent", "partial", "failed", "expired")


# --- The ambiguous-failure rule ----------------------------------------------------------------


ALL_RECIPIENTS: Final = "*"
"""The recipient key of a party, a tag or @all: whom it reaches is unknown, so it overlaps
every member."""


@dataclass(frozen=True, slots=True)
class EarlierSend:
    """A message/send of the same content the notifier made before (any request)."""

    request_id: str
    sent_at: float
    checked: bool
    interval: int


@dataclass(frozen=True, slots=True)
class DuplicatePlan:
    """How one request's message/send uses WeCom's duplicate check (docs/notifier.md).

    ``retry_safe``: a retry after an ambiguous failure may go out (the first attempt had the
    check on and the retry sends the same body); otherwise such a request fails instead.
    ``duplicate_users``: members the check will hold back because they got the same content,
    from a send that had the check on, within this send's interval.
    """

    check: bool
    interval: int
    retry_safe: bool
    duplicate_users: tuple[str, ...] = ()


def _overlapping(
    recipients: Sequence[str], earlier: Mapping[str, Sequence[EarlierSend]]
) -> list[EarlierSend]:
    if ALL_RECIPIENTS in recipients:
        return [send for sends in earlier.values() for send in sends]
    keys = {*recipients, ALL_RECIPIENTS}
    return [send for key in keys for send in earlier.get(key, ())]


def plan_duplicate_check(
    options: NotifyOptions,
    *,
    request_id: str,
    recipients: Sequence[str],
    earlier: Mapping[str, Sequence[EarlierSend]],
    now: float,
    horizon_s: float,
) -> DuplicatePlan:
    """Whether a message/send goes out with WeCom's duplicate check, and for how long.

    What the caller set is honoured: ``1`` is on (its interval, else WeCom's 1800 s), ``0``
    off. Left ``null``, the check is on over the whole retry schedule (``horizon_s``) so that
    a retry after an ambiguous failure cannot deliver twice — unless the same content went to
    an overlapping recipient recently (within this interval or that send's own): WeCom might
    then hold this distinct request back, so it goes out without the check (and is not
    retried after an ambiguous failure).

    Args:
        options: the request's options.
        request_id: the request's id (its own earlier attempts do not count).
        recipients: lower-cased user ids, and :data:`ALL_RECIPIENTS` for parties, tags, @all.
        earlier: recipient key → earlier sends of the same content.
        now: the current time.
        horizon_s: how long the bus may take over all retries of the request.
    """
    others = [send for send in _overlapping(recipients, earlier) if send.request_id != request_id]
    if options.enable_duplicate_check == 0:
        return DuplicatePlan(False, options.duplicate_check_interval or 1800, retry_safe=False)
    if options.enable_duplicate_check == 1:
        interval = options.duplicate_check_interval or 1800
        held = sorted(
            {
                user
                for user in recipients
                if user != ALL_RECIPIENTS
                for send in earlier.get(user, ())
                if send.request_id != request_id and send.checked and now - send.sent_at < interval
            }
        )
        return DuplicatePlan(True, interval, retry_safe=True, duplicate_users=tuple(held))
    needed = max(math.ceil(horizon_s) + DUPLICATE_SLACK_S, options.duplicate_check_interval or 0)
    interval = min(needed, MAX_DUPLICATE_INTERVAL_S)
    for send in others:
        window = max(interval, send.interval if send.checked else 0)
        if now - send.sent_at < window:
            return DuplicatePlan(False, interval, retry_safe=False)
    return DuplicatePlan(True, interval, retry_safe=True)


def retry_covered(interval_s: int, *, first_sent_at: float, now: float) -> bool:
    """Whether a retry now still falls inside the duplicate-check interval of the first send
    (else it could deliver twice and must not happen)."""
    return now - first_sent_at + DUPLICATE_SLACK_S <= interval_s


# --- Per-request records -----------------------------------------------------------------------

RecordState = Literal["claimed", "done"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the notifier remembers of one request id (the idempotency record).

    ``claimed``: a replica owns it until ``claimed_until``; ``in_flight`` is set while a WeCom
    call is under way, so a replica taking over from a crashed owner knows the call may have
    gone out. ``done``: the result is final and is only ever republished.
    """

    request_id: str
    state: RecordState
    owner: str = ""
    claimed_until: float = 0.0
    attempts: int = 0
    in_flight: bool = False
    ambiguous: bool = False
    first_sent_at: float | None = None
    # The duplicate check pinned at the first send: every retry sends the same body.
    duplicate_interval: int | None = None
    duplicate_check: bool | None = None
    retry_safe: bool = True
    # The send-limit booking of the next attempt, kept while it waits for its slot.
    slot_at: float | None = None
    booked_at: float | None = None
    media_ids: Mapping[str, str] = field(default_factory=dict)
    result: NotifyResult | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "owner": self.owner,
            "claimed_until": self.claimed_until,
            "attempts": self.attempts,
            "in_flight": self.in_flight,
            "ambiguous": self.ambiguous,
            "first_sent_at": self.first_sent_at,
            "duplicate_interval": self.duplicate_interval,
            "duplicate_check": self.duplicate_check,
            "retry_safe": self.retry_safe,
            "slot_at": self.slot_at,
            "booked_at": self.booked_at,
            "media_ids": dict(self.media_ids),
            "result": None if self.result is None else self.result.model_dump(mode="json"),
        }

    @classmethod
    def from_doc(cls, request_id: str, doc: Mapping[str, Any]) -> RequestRecord:
        result = doc.get("result")
        first = doc.get("first_sent_at")
        interval = doc.get("duplicate_interval")
        check = doc.get("duplicate_check")
        return cls(
            request_id=request_id,
            state="done" if doc.get("state") == "done" else "claimed",
            owner=str(doc.get("owner", "")),
            claimed_until=float(doc.get("claimed_until", 0.0)),
            attempts=int(doc.get("attempts", 0)),
            in_flight=bool(doc.get("in_flight", False)),
            ambiguous=bool(doc.get("ambiguous", False)),
            first_sent_at=None if first is None else float(first),
            duplicate_interval=None if interval is None else int(interval),
            duplicate_check=None if check is None else bool(check),
            retry_safe=bool(doc.get("retry_safe", True)),
            slot_at=_optional_float(doc.get("slot_at")),
            booked_at=_optional_float(doc.get("booked_at")),
            media_ids={str(k): str(v) for k, v in (doc.get("media_ids") or {}).items()},
            result=None if result is None else NotifyResult.model_validate(result),
        )

    @property
    def is_done(self) -> bool:
        return self.state == "done" and self.result is not None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def take_over(record: RequestRecord, owner: str, now: float, claim_s: float) -> RequestRecord:
    """``record`` claimed by ``owner``. A call left in flight by a previous owner (a crash
    mid-send) makes every later send ambiguous: it may have been delivered."""
    return replace(
        record,
        owner=owner,
        claimed_until=now + claim_s,
        in_flight=False,
        ambiguous=record.ambiguous or record.in_flight,
    )


def is_claimable(record: RequestRecord, now: float) -> bool:
    """Free to claim: not done, and no live claim of another delivery."""
    return record.state == "claimed" and record.claimed_until <= now


# --- Send limits -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A limit of ``limit`` person-times per ``length_s`` seconds.

    WeCom does not say whether its windows are sliding or fixed (protocol doc §11.7), so the
    stricter sliding reading is kept: counts live in ``slots`` buckets per window, and a send
    is admitted only if every bucket overlapping the last ``length_s + margin`` seconds, plus
    this send, stays within the limit. Any sliding window of ``length_s`` then holds at most
    ``limit`` sends, at the price of a window's throughput being up to one bucket shorter.
    """

    name: str
    limit: int
    length_s: float
    slots: int = 12

    @property
    def slot_s(self) -> float:
        return self.length_s / self.slots


Counts = dict[str, dict[str, int]]
"""A counter document's state: window name → {bucket index (as text) → person-times}."""


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of :func:`admit`: admitted with the new ``counts``, or a ``wait_s``.

    ``wait_s`` is None when the send can never be admitted (heavier than the limit).
    """

    admitted: bool
    counts: Counts
    wait_s: float | None = 0.0
    window: str | None = None


def _first_live_slot(window: Window, now: float, margin_s: float) -> int:
    return math.floor((now - window.length_s - margin_s) / window.slot_s)


def _live(buckets: Mapping[str, int], lowest: int) -> dict[int, int]:
    return {int(k): int(v) for k, v in buckets.items() if int(k) >= lowest and int(v) > 0}


def _wait_for(
    window: Window, live: Mapping[int, int], weight: int, now: float, margin_s: float
) -> float | None:
    """Seconds until enough old buckets have left the window for ``weight`` more."""
    if weight > window.limit:
        return None
    used = sum(live.values())
    for index in sorted(live):
        used -= live[index]
        if used + weight <= window.limit:
            leaves_at = (index + 1) * window.slot_s + window.length_s + margin_s
            return max(0.0, leaves_at - now)
    return 0.0  # pragma: no cover - the loop always frees enough (weight <= limit)


def admit(
    counts: Mapping[str, Mapping[str, int]],
    windows: tuple[Window, ...],
    weight: int,
    now: float,
    *,
    margin_s: float,
) -> Admission:
    """Count ``weight`` person-times at ``now`` if every window has room.

    Returns the pruned counts with the send added, or the longest wait any full window needs.
    """
    updated: Counts = {}
    for window in windows:
        live = _live(counts.get(window.name, {}), _first_live_slot(window, now, margin_s))
        if sum(live.values()) + weight > window.limit:
            wait = _wait_for(window, live, weight, now, margin_s)
            return Admission(False, {}, wait, window.name)
        current = math.floor(now / window.slot_s)
        live[current] = live.get(current, 0) + weight
        updated[window.name] = {str(k): v for k, v in live.items()}
    return Admission(True, updated)


def give_back(
    counts: Mapping[str, Mapping[str, int]], windows: tuple[Window, ...], weight: int, at: float
) -> Counts:
    """``counts`` with a send admitted at ``at`` taken out again (it was never sent)."""
    updated: Counts = {name: dict(buckets) for name, buckets in counts.items()}
    for window in windows:
        key = str(math.floor(at / window.slot_s))
        buckets = updated.setdefault(window.name, {})
        if key in buckets:
            buckets[key] = max(0, buckets[key] - weight)
    return updated


def next_slot(
    times: Sequence[float], windows: tuple[Window, ...], *, now: float, margin_s: float
) -> tuple[float, list[float]]:
    """The moment one more send to a member may go out, and the member's send times with it.

    ``times`` are the member's scheduled sends (past and future). The slot is the earliest
    moment, no sooner than ``now`` nor than the member's last slot (so messages leave in the
    order they were scheduled), at which every window of ``length_s + margin_s`` ending there
    holds fewer than ``limit`` sends: exactly when the oldest send in a full window leaves it.
    Times older than every window are dropped.

    Args:
        times: the member's scheduled send times.
        windows: the per-member windows in force (each ``limit`` ≥ 1).
        now: the current time.
        margin_s: seconds every window is stretched by (clock skew, transit).
    """
    horizon = max((w.length_s for w in windows), default=0.0) + margin_s
    kept = sorted(t for t in times if t > now - horizon)
    slot = max(now, kept[-1]) if kept else now
    moved = True
    while moved:
        moved = False
        for window in windows:
            span = window.length_s + margin_s
            inside = [t for t in kept if t > slot - span]
            if len(inside) >= window.limit:
                # The oldest sends must leave until one more fits.
                leaves = inside[len(inside) - window.limit] + span
                if leaves > slot:
                    slot, moved = leaves, True
    return slot, [*kept, slot]


def without_slot(times: Sequence[float], slot: float) -> list[float]:
    """``times`` with one occurrence of ``slot`` taken out (a send that never went out)."""
    remaining = list(times)
    if slot in remaining:
        remaining.remove(slot)
    return remaining


def member_windows(
    per_minute: int, per_hour: int, *, minute_s: float, hour_s: float
) -> tuple[Window, ...]:
    """The per-member windows in force (a limit of 0 is off)."""
    windows = []
    if per_minute > 0:
        windows.append(Window("minute", per_minute, minute_s, slots=12))
    if per_hour > 0:
        windows.append(Window("hour", per_hour, hour_s, slots=60))
    return tuple(windows)


def app_windows(per_day: int, *, day_s: float) -> tuple[Window, ...]:
    return (Window("day", per_day, day_s, slots=24),) if per_day > 0 else ()


def app_weight(users: int, parties: int, tags: int, *, all_members: bool, group_size: int) -> int:
    """Person-times a send counts against the per-app budget: one per user, and
    ``group_size`` for @all and for each party or tag (their size is unknown here)."""
    if all_members:
        return group_size
    return users + (parties + tags) * group_size


def slot_ttl(windows: tuple[Window, ...], margin_s: float) -> float:
    """How long a member's slot document must outlive its last write: past its last slot,
    which lies ahead by however long the member's backlog is (a day is allowed for)."""
    return 86_400.0 + max((w.length_s for w in windows), default=0.0) + margin_s


def counter_ttl(windows: tuple[Window, ...], margin_s: float) -> float:
    """How long a counter document must outlive its last write."""
    return max(w.length_s + w.slot_s for w in windows) + margin_s + 1.0


@dataclass(frozen=True, slots=True)
class NotifierPolicy:
    """The notifier's limits and timings, taken from its settings."""

    max_attempts: int
    member_windows: tuple[Window, ...]
    app_windows: tuple[Window, ...]
    margin_s: float
    group_size: int
    hold_s: float
    media_margin_s: float
    claim_s: float
    # How long the bus may still take to run a request's remaining retries.
    retry_horizon_s: float
