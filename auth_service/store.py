"""auth_service's repository on the shared document store: installations, the install-limit
ledger and the auth-code exchange records. Permanent codes are sealed with DATA_KEY.

Every write is one single-document step (insert-if-absent or compare-and-set), so the same
code is atomic on SQLite and on a MongoDB cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Final

from auth_service.domain import Admission, CodeRecord, InstallationRecord, Ledger
from shared.storage.abc import DocumentStore, StoredRecord
from shared.storage.cas import Decision, Keep, Write, compare_and_update
from shared.storage.crypto import SecretBox

INSTALLATIONS: Final = "auth_installations"
LEDGER: Final = "auth_ledger"
CODES: Final = "auth_codes"
STATES: Final = "auth_states"
COLLECTIONS: Final = (INSTALLATIONS, LEDGER, CODES, STATES)

_LEDGER_KEY: Final = "ledger"
# Auth codes live 10 minutes at WeCom (§1.3); their records outlive them so that a late
# duplicate (a WeCom retry, the other delivery path) still finds the first outcome.
CODE_RECORD_TTL_S: Final = 3600.0
# An install state is honoured for 20 minutes plus a day's grace (gateway.web.install_state):
# its binding to the one auth code it completed must outlive that.
STATE_BINDING_TTL_S: Final = 2 * 86_400.0


def code_key(auth_code: str) -> str:
    """Auth codes are credentials: records are keyed by their hash, never the code."""
    return hashlib.sha256(auth_code.encode()).hexdigest()


class AuthRepository:
    def __init__(self, store: DocumentStore, box: SecretBox) -> None:
        self._store = store
        self._box = box

    # --- auth-code exchange records -------------------------------------------------------

    async def claim_code(self, auth_code: str, event_id: str, *, now: float) -> CodeRecord | None:
        """Claim the exchange of ``auth_code`` for ``event_id``.

        Returns None when this event now holds the claim (go on and exchange), else the
        existing record (another delivery got there first; its holder finishes it, or this
        is the same event redelivered and resumes from the record).
        """
        key = code_key(auth_code)
        doc = CodeRecord("claimed", event_id, claimed_at=now).to_doc()
        if await self._store.insert_if_absent(CODES, key, doc, ttl=CODE_RECORD_TTL_S):
            return None
        return await self.code_record(auth_code)

    async def release_code(self, auth_code: str, event_id: str) -> None:
        """Drop ``event_id``'s claim while nothing is exchanged (the caller knows its call
        never reached WeCom)."""
        key = code_key(auth_code)
        record = await self._store.get_record(CODES, key)
        if record is None:
            return
        code = CodeRecord.from_doc(record.doc)
        if code.status in ("claimed", "sent") and code.event_id == event_id:
            await self._store.compare_and_delete(CODES, key, record.version)

    async def save_code(self, auth_code: str, record: CodeRecord) -> None:
        await self._store.put(CODES, code_key(auth_code), record.to_doc(), ttl=CODE_RECORD_TTL_S)

    async def code_record(self, auth_code: str) -> CodeRecord | None:
        doc = await self._store.get(CODES, code_key(auth_code))
        return None if doc is None else CodeRecord.from_doc(doc)

    async def bind_state(self, state: str, auth_code: str) -> bool:
        """Bind an install ``state`` to the one auth code it completes; False when it is
        already bound to another code (a state completes at most one install)."""
        key = code_key(state)
        doc = {"code": code_key(auth_code)}
        if await self._store.insert_if_absent(STATES, key, doc, ttl=STATE_BINDING_TTL_S):
            return True
        bound = await self._store.get(STATES, key)
        return bound is not None and bound.get("code") == doc["code"]

    def seal_exchange(self, auth_code: str, result: dict[str, Any]) -> str:
        """The exchange result (it holds the permanent code) sealed for the code record."""
        return self._box.seal(json.dumps(result), context=f"auth/code/{code_key(auth_code)}")

    def open_exchange(self, auth_code: str, sealed: str) -> dict[str, Any]:
        opened: dict[str, Any] = json.loads(
            self._box.open(sealed, context=f"auth/code/{code_key(auth_code)}")
        )
        return opened

    # --- the ledger -----------------------------------------------------------------------

    async def ledger(self) -> Ledger:
        return Ledger.from_doc(await self._store.get(LEDGER, _LEDGER_KEY))

    async def update_ledger(
        self, change: Callable[[Ledger], Admission]
    ) -> tuple[Ledger, Admission]:
        """Apply ``change`` to the ledger atomically; the ledger before and the admission.

        A refused admission writes nothing. Losers of a race re-read and re-decide, so two
        installs racing for the last slot never both get it; a ledger too contended to
        write raises the retryable :class:`~shared.storage.ContentionError`.
        """

        def decide(record: StoredRecord | None) -> Decision[tuple[Ledger, Admission]]:
            before = Ledger.from_doc(None if record is None else record.doc)
            admission = change(before)
            if not admission.admitted or admission.ledger == before:
                return Keep((before, admission))
            return Write(admission.ledger.to_doc(), (before, admission))

        # Every admission of every replica writes this one document. The shared policy is
        # enough: racing the last slots (tests/integration/test_auth_service.py) took at most
        # 5 tries of its 100, the losers spread by its jittered waits.
        return await compare_and_update(self._store, LEDGER, _LEDGER_KEY, decide)

    # --- installations --------------------------------------------------------------------

    async def installation(self, corp_id: str) -> InstallationRecord | None:
        doc = await self._store.get(INSTALLATIONS, corp_id)
        return None if doc is None else self._record_of(doc)

    async def installations(self) -> list[InstallationRecord]:
        return [self._record_of(r.doc) for r in await self._store.find(INSTALLATIONS)]

    async def update_installation(
        self,
        corp_id: str,
        change: Callable[[InstallationRecord | None], InstallationRecord | None],
    ) -> InstallationRecord | None:
        """Apply ``change`` atomically (compare-and-set); the stored result, or None when
        ``change`` decided to change nothing."""

        def decide(record: StoredRecord | None) -> Decision[InstallationRecord | None]:
            updated = change(None if record is None else self._record_of(record.doc))
            return Keep(None) if updated is None else Write(self._doc_of(updated), updated)

        return await compare_and_update(self._store, INSTALLATIONS, corp_id, decide)

    def _doc_of(self, record: InstallationRecord) -> dict[str, Any]:
        doc = asdict(record)
        doc["members"] = list(record.members)
        code = record.permanent_code
        doc["permanent_code"] = (
            None
            if code is None
            else self._box.seal(code, context=f"auth/installation/{record.corp_id}")
        )
        return doc

    def _record_of(self, doc: dict[str, Any]) -> InstallationRecord:
        values = dict(doc)
        sealed = values.pop("permanent_code", None)
        corp_id = str(values["corp_id"])
        values["members"] = tuple(values.get("members", ()))
        code = (
            None
            if sealed is None
            else self._box.open(sealed, context=f"auth/installation/{corp_id}")
        )
        return InstallationRecord(**values, permanent_code=code)
