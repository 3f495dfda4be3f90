"""WeCom's install limits for an individual developer's app (protocol doc §13.3).

At most 10 distinct corps and 100 distinct users, at most 10 test accounts at a time, and one
WeCom account cannot have both the test and the released app installed. The doc does not say
whether an uninstall frees a place; the simulator counts current installs (a documented
assumption, see docs/simulator.md), and test installs count only against the test-account
limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.installs import Corp


@dataclass(frozen=True, slots=True)
class InstallLimits:
    """Each limit; ``None`` (or ``enabled=False`` for all of them) switches it off."""

    enabled: bool = True
    corps: int | None = 10
    users: int | None = 100
    test_accounts: int | None = 10
    exclusive: bool = True


def refusal(
    limits: InstallLimits,
    corps: Mapping[str, Corp],
    corp_id: str,
    user_id: str,
    *,
    test: bool,
) -> str | None:
    """Why this install is refused (a short reason for ``/_sim/install``), or None."""
    if not limits.enabled:
        return None
    corp = corps.get(corp_id)
    member = None if corp is None else corp.members.get(user_id)
    if member is not None and member.installed:
        if limits.exclusive and member.test != test:
            return "test_and_released_exclusive"
        return None  # a re-install of the same kind takes no new place
    installed = [(c.corp_id, m) for c in corps.values() for m in c.members.values() if m.installed]
    if test:
        tests = {(cid, m.user_id) for cid, m in installed if m.test}
        return _over(limits.test_accounts, len(tests), "test_account_limit")
    released = [(cid, m) for cid, m in installed if not m.test]
    if corp_id not in {cid for cid, _ in released}:
        reason = _over(limits.corps, len({cid for cid, _ in released}), "corp_limit")
        if reason is not None:
            return reason
    return _over(limits.users, len(released), "user_limit")


def _over(limit: int | None, used: int, reason: str) -> str | None:
    return reason if limit is not None and used >= limit else None
