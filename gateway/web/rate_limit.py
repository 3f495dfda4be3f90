"""The per-client rate limit of the routes whose every hit costs a WeCom call (``/install``,
``/oauth/callback``)."""

from __future__ import annotations

from collections import OrderedDict, deque


class RateLimiter:
    """At most ``limit`` hits per ``window_s`` for each key (a client address), remembering at
    most ``max_keys`` keys (the least recently seen are forgotten first)."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 10_000) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        if self._limit <= 0:
            return True
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self._window_s:
            hits.popleft()
        allowed = len(hits) < self._limit
        if allowed:
            hits.append(now)
        self._hits[key] = hits
        while len(self._hits) > self._max_keys:
            self._hits.popitem(last=False)
        return allowed
