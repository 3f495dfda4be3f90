"""What ``message/send`` delivers: recipients, duplicate check, send limits, records.

Plain Python on the state's clock. Protocol doc §11.1 for recipients and the duplicate check,
§11.7 for the limits (30/minute and 1000/hour per app and member: the excess is silently
dropped while the call still succeeds; a daily per-app budget of person-times: 45009),
§11.4/§11.5 for what a send leaves behind (response_code, msgid).
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from simulator.installs import Corp
from simulator.state_types import Clock, WeComError

Outcome = Literal["delivered", "duplicate", "dropped_limit", "invalid"]

DEFAULT_DUPLICATE_INTERVAL_S = 1800
MAX_DUPLICATE_INTERVAL_S = 4 * 3600
RESPONSE_CODE_TTL_S = 72 * 3600
RECALL_WINDOW_S = 24 * 3600
# WeCom's "natural day" (§11.7: a day-limit blocks for the rest of it) is China's, UTC+8.
_CHINA_UTC_OFFSET_S = 8 * 3600
# Fields that say who gets a message or how it is checked, not what it says: two sends that
# differ only in these carry the same content for the duplicate check.
_ENVELOPE = frozenset(
    {"touser", "toparty", "totag", "enable_duplicate_check", "duplicate_check_interval"}
)


@dataclass(frozen=True, slots=True)
class SendLimits:
    """§11.7: per app and member a minute and an hour window (excess silently dropped), per
    app a daily budget of person-times (45009); ``None`` switches a limit off.

    The window lengths are WeCom's minute and hour; tests shrink them.
    """

    per_minute: int | None = 30
    per_hour: int | None = 1000
    minute_s: float = 60.0
    hour_s: float = 3600.0
    per_app_day: int | None = None


def china_day(now: float) -> int:
    """The number of WeCom's natural day (UTC+8) that ``now`` falls in."""
    return int((now + _CHINA_UTC_OFFSET_S) // 86_400)


@dataclass(frozen=True, slots=True)
class Recipients:
    """The ids of a send split into the members it reaches and the invalid rest."""

    users: list[str]
    invalid_users: list[str]
    invalid_parties: list[str]
    invalid_tags: list[str]


@dataclass(slots=True)
class SentMessage:
    """One accepted ``message/send``: the body as sent and what became of each member."""

    msgid: str
    corp_id: str
    agent_id: int
    sent_at: float
    body: dict[str, Any]
    outcomes: dict[str, Outcome]
    invalid_parties: list[str]
    invalid_tags: list[str]
    response_code: str | None = None
    recalled: bool = False
    updates: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "msgid": self.msgid,
            "corp_id": self.corp_id,
            "agent_id": self.agent_id,
            "sent_at": self.sent_at,
            "body": self.body,
            "outcomes": dict(self.outcomes),
            "invalid_parties": self.invalid_parties,
            "invalid_tags": self.invalid_tags,
            "response_code": self.response_code,
            "recalled": self.recalled,
            "updates": self.updates,
        }


def split_ids(value: object) -> list[str]:
    """``"a|b"`` (or an int for a single party/tag id) as a list, blanks dropped."""
    if value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    if not isinstance(value, str):
        raise WeComError(40058, "invalid parameter, recipients must be '|'-separated strings")
    return [part for part in value.split("|") if part]


def resolve_recipients(corp: Corp, body: dict[str, Any]) -> Recipients:
    """§11.1: who a send reaches. 82001 when every list is empty.

    Under member authorisation the visible range is the members who installed the app and
    no department or tag is visible, so every party and tag id is invalid. WeCom lists the
    invalid userids lower-cased; ids are matched case-insensitively for the same reason.
    """
    users, parties, tags = (split_ids(body.get(key)) for key in ("touser", "toparty", "totag"))
    if not (users or parties or tags):
        raise WeComError(82001, "all touser, toparty and totag are empty")
    if len(users) > 1000 or len(parties) > 100 or len(tags) > 100:
        raise WeComError(40058, "invalid parameter, too many recipients")
    visible = {m.user_id.lower(): m.user_id for m in corp.installed_members}
    if "@all" in users:
        # @all is everyone in the visible range; parties and tags are then ignored (§11.1).
        return Recipients(list(visible.values()), [], [], [])
    reached: list[str] = []
    invalid: list[str] = []
    for user in users:
        member = visible.get(user.lower())
        if member is None:
            invalid.append(user.lower())
        elif member not in reached:
            reached.append(member)
    return Recipients(reached, invalid, parties, tags)


def duplicate_interval(body: dict[str, Any]) -> float | None:
    """The duplicate-check window of a send in seconds, or None when the check is off.

    WeCom documents a maximum of 4 hours but no error for more; we clamp (our choice).
    """
    if body.get("enable_duplicate_check") not in (1, True):
        return None
    interval = body.get("duplicate_check_interval", DEFAULT_DUPLICATE_INTERVAL_S)
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
        raise WeComError(40058, "invalid parameter duplicate_check_interval")
    return float(min(interval, MAX_DUPLICATE_INTERVAL_S))


def content_key(body: dict[str, Any]) -> str:
    """The body without its envelope, canonically encoded: what "the same content" means."""
    content = {k: v for k, v in body.items() if k not in _ENVELOPE}
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Outbox:
    """Every accepted send, and the per-member history the limits and duplicates need."""

    clock: Clock
    limits: SendLimits = field(default_factory=SendLimits)
    sent: list[SentMessage] = field(default_factory=list, init=False)
    by_msgid: dict[str, SentMessage] = field(default_factory=dict, init=False)
    response_codes: dict[str, tuple[str, float]] = field(default_factory=dict, init=False)
    # (corp, agent, member) → times of delivered messages, oldest first, for the limits.
    _delivered_at: dict[tuple[str, int, str], deque[float]] = field(
        default_factory=lambda: defaultdict(deque), init=False
    )
    # (corp, agent, member, content) → when it was last delivered by a send with the
    # duplicate check on, for the duplicate check of later such sends.
    _last_content: dict[tuple[str, int, str, str], float] = field(default_factory=dict, init=False)
    # (corp, agent) → (natural day, person-times sent that day), for the daily budget.
    _day_used: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict, init=False)

    def reset(self) -> None:
        self.sent.clear()
        self.by_msgid.clear()
        self.response_codes.clear()
        self._delivered_at.clear()
        self._last_content.clear()
        self._day_used.clear()

    def deliver(self, corp: Corp, body: dict[str, Any], users: list[str]) -> dict[str, Outcome]:
        """What happens to each reached member: delivered, duplicate or dropped by a limit.

        45009 (nothing delivered) when the send would take the app over its daily budget.
        """
        now = self.clock()
        self._spend_day_budget((corp.corp_id, corp.agent_id), len(users), now)
        interval = duplicate_interval(body)
        key = content_key(body)
        outcomes: dict[str, Outcome] = {}
        for user in users:
            content_slot = (corp.corp_id, corp.agent_id, user, key)
            last = self._last_content.get(content_slot)
            if interval is not None and last is not None and now - last < interval:
                outcomes[user] = "duplicate"
            elif self._over_limit((corp.corp_id, corp.agent_id, user), now):
                outcomes[user] = "dropped_limit"
            else:
                self._delivered_at[(corp.corp_id, corp.agent_id, user)].append(now)
                if interval is not None:
                    # Only a send made with the check on is remembered for it (the reading
                    # documented in docs/notifier.md, "The duplicate check").
                    self._last_content[content_slot] = now
                outcomes[user] = "delivered"
        return outcomes

    def _over_limit(self, member: tuple[str, int, str], now: float) -> bool:
        """Sliding windows over delivered messages (duplicates and drops do not count).

        WeCom does not say whether its windows are sliding or fixed; sliding windows never
        let more through than fixed ones would, so a sender that passes here passes there.
        """
        limits = self.limits
        times = self._delivered_at[member]
        while times and now - times[0] >= max(limits.hour_s, limits.minute_s):
            times.popleft()
        in_minute = sum(1 for t in times if now - t < limits.minute_s)
        in_hour = sum(1 for t in times if now - t < limits.hour_s)
        minute, hour = limits.per_minute, limits.per_hour
        return (minute is not None and in_minute >= minute) or (
            hour is not None and in_hour >= hour
        )

    def _spend_day_budget(self, app: tuple[str, int], person_times: int, now: float) -> None:
        """§11.7: each member a send reaches is one person-time of the app's daily budget.

        A send that would go over it is refused whole (our reading; the doc only says 45009),
        and the budget is back at the start of the next natural day (UTC+8).
        """
        budget = self.limits.per_app_day
        if budget is None:
            return
        today = china_day(now)
        day, used = self._day_used.get(app, (today, 0))
        if day != today:
            used = 0
        if used + person_times > budget:
            raise WeComError(45009, "api freq out of limit, the app's daily send budget is spent")
        self._day_used[app] = (today, used + person_times)

    def record(self, message: SentMessage) -> None:
        self.sent.append(message)
        self.by_msgid[message.msgid] = message
        if message.response_code is not None:
            expires_at = message.sent_at + RESPONSE_CODE_TTL_S
            self.response_codes[message.response_code] = (message.msgid, expires_at)

    def use_response_code(self, code: object) -> SentMessage:
        """§11.4: a response_code is single use and valid 72 h; 40058 otherwise (our code)."""
        entry = self.response_codes.pop(code, None) if isinstance(code, str) else None
        if entry is None or self.clock() >= entry[1]:
            raise WeComError(40058, "invalid parameter response_code, unknown, used or expired")
        return self.by_msgid[entry[0]]

    def recall(self, corp: Corp, msgid: object) -> SentMessage:
        """§11.5: recall a message this app sent in the last 24 hours; 40058 otherwise."""
        message = self.by_msgid.get(msgid) if isinstance(msgid, str) else None
        if message is None or (message.corp_id, message.agent_id) != (corp.corp_id, corp.agent_id):
            raise WeComError(40058, "invalid parameter msgid, not a message of this app")
        if message.recalled:
            raise WeComError(40058, "invalid parameter msgid, already recalled")
        if self.clock() - message.sent_at >= RECALL_WINDOW_S:
            raise WeComError(40058, "invalid parameter msgid, older than 24 hours")
        message.recalled = True
        return message
