"""The replay cache: ids seen recently, remembered for a TTL in bounded memory. Neutral ground:
the callback path suppresses repeated callbacks with it, sign-in refuses a reused state."""

from __future__ import annotations

from collections import deque


class ReplayCache:
    """Ids published recently, each remembered for at least ``ttl_s`` seconds, at most
    ``max_entries``.

    Entries share one TTL and are added in time order, so the oldest is always first:
    expiry and eviction only ever look at the front. The ids sit in a set and their order in
    a deque; deadlines are rounded up to whole seconds and run-length encoded (one
    ``[deadline, count]`` pair per second, not a float per id), so an id costs about 110
    bytes with a 16-byte key -- at the default of 200,000 ids, memory is a real cost.
    """

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._keys: set[bytes] = set()
        self._order: deque[bytes] = deque()  # oldest first
        # [deadline, how many ids of _order, from the front, share it], oldest first.
        self._deadlines: deque[list[int]] = deque()

    def __len__(self) -> int:
        return len(self._keys)

    def seen(self, key: bytes, now: float) -> bool:
        """True if ``key`` was added less than ``ttl_s`` ago."""
        self._expire(now)
        return key in self._keys

    def add(self, key: bytes, now: float) -> None:
        if key in self._keys:
            # Re-adding restarts the id's TTL: it moves to the back. Rare (the publisher only
            # adds ids it has not seen), so a linear search is fine.
            self._remove_at(self._order.index(key))
        else:
            self._keys.add(key)
        self._order.append(key)
        deadline = -int(-(now + self._ttl_s) // 1)  # rounded up: never forgets early
        deadlines = self._deadlines
        if deadlines and deadlines[-1][0] >= deadline:
            deadlines[-1][1] += 1  # the clock never goes back, so later deadlines merge
        else:
            deadlines.append([deadline, 1])
        self._expire(now)
        while len(self._keys) > self._max_entries:
            self._drop_oldest()

    def _expire(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        run = self._deadlines[0]
        run[1] -= 1
        if not run[1]:
            self._deadlines.popleft()
        self._keys.discard(self._order.popleft())

    def _remove_at(self, index: int) -> None:
        del self._order[index]
        for run in self._deadlines:
            if index < run[1]:
                run[1] -= 1
                if not run[1]:
                    self._deadlines.remove(run)
                return
            index -= run[1]
