"""auth_service's record of member sessions that ended before their cookie expired (sign-out),
kept until the cookie would have expired, so every gateway replica refuses a replayed one."""

from __future__ import annotations

import hashlib
from typing import Final

from shared.storage.abc import DocumentStore

ENDED_SESSIONS: Final = "auth_ended_sessions"
SESSION_COLLECTIONS: Final = (ENDED_SESSIONS,)


def _key(session_id: str) -> str:
    # The id travels in a signed cookie; the store keeps only a digest of it.
    return hashlib.sha256(session_id.encode()).hexdigest()


class EndedSessions:
    """Ended session ids, each for the rest of its session's life."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    async def end(self, session_id: str, *, expires_at: float, now: float) -> None:
        """Remember ``session_id`` as ended until ``expires_at`` (Unix seconds)."""
        # At least a minute: a cookie one second from expiry is no less ended.
        ttl = max(expires_at - now, 60.0)
        await self._store.put(ENDED_SESSIONS, _key(session_id), {"ended": True}, ttl=ttl)

    async def is_ended(self, session_id: str) -> bool:
        """Whether the member signed out of ``session_id``."""
        return await self._store.get(ENDED_SESSIONS, _key(session_id)) is not None
