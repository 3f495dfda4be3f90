"""Installs.on_auth_code with a fake WeCom on a real SQLite store: exactly one exchange per
auth code, and a crash after the exchange resumes without asking WeCom again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from auth_service.domain import Limits
from auth_service.exchange import AuthInfo, Exchanged
from auth_service.installs import CLAIM_FRESH_S, Installs
from auth_service.store import COLLECTIONS, AuthRepository
from shared.bus.abc import RetryLater
from shared.contracts import Payload
from shared.storage.crypto import SecretBox
from shared.storage.sqlite import SQLiteStore
from shared.wecom.api import WeComApiError

BOX = SecretBox(bytes(range(32)))


class FakeApi:
    def __init__(self, *, v2: bool = False) -> None:
        self.exchanges = 0
        self.completions = 0
        self.used: set[str] = set()
        self.v2 = v2
        self.fail_completion = False

    async def exchange(self, auth_code: str) -> Exchanged:
        self.exchanges += 1
        await asyncio.sleep(0.01)
        if auth_code in self.used:
            raise WeComApiError(40029, "invalid code", "/get_permanent_code")
        self.used.add(auth_code)
        return Exchanged(
            corp_id="wwcorp",
            permanent_code=f"perm-for-{auth_code}",
            state=None,
            installer_user_id="alice",
            installer_open_userid="o-alice",
            info=AuthInfo(corp_name="Corp", agent_id=7, auth_mode=1, members=("alice",)),
            complete=not self.v2,
        )

    async def complete(self, exchanged: Exchanged) -> Exchanged:
        self.completions += 1
        if self.fail_completion:
            self.fail_completion = False
            raise WeComApiError(-1, "busy", "/v2/get_auth_info")
        return replace(exchanged, complete=True)

    async def auth_info(self, corp_id: str, permanent_code: str) -> AuthInfo:
        return AuthInfo(corp_name="Corp", agent_id=7, auth_mode=1, members=("alice",))


class Events:
    def __init__(self) -> None:
        self.published: list[tuple[str, Payload]] = []
        self.fail_next = False

    async def __call__(
        self, event_type: str, payload: Payload, corp_id: str | None, at: float, source: str
    ) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("crash while publishing")
        self.published.append((event_type, payload))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "db.sqlite3", COLLECTIONS)
    await store.start()
    yield store
    await store.stop()


class Clock:
    now = 1_000.0

    def __call__(self) -> float:
        return self.now


def installs(
    store: SQLiteStore, api: FakeApi, events: Events, clock: Clock | None = None
) -> Installs:
    repository = AuthRepository(store, BOX)
    return Installs(
        repository,
        api,  # type: ignore[arg-type]
        BOX,
        events,
        limits=Limits(),
        test_corp_ids=frozenset(),
        clock=clock or Clock(),
    )


async def test_concurrent_deliveries_of_one_code_exchange_it_once(store: SQLiteStore) -> None:
    """Five concurrent deliveries of one auth code make one exchange and one auth.granted."""
    api, events = FakeApi(), Events()
    service = installs(store, api, events)
    await asyncio.gather(
        *(service.on_auth_code("code-1", source_id=f"event-{i}", occurred_at=1.0) for i in range(5))
    )
    assert api.exchanges == 1
    assert [kind for kind, _ in events.published] == ["auth.granted"]
    outcome = await service.outcome("code-1", 0)
    assert outcome["status"] == "installed"


async def test_a_crash_after_the_exchange_resumes_without_wecom(store: SQLiteStore) -> None:
    """A crash after the exchange resumes from the sealed result, without calling WeCom again."""
    api, events, clock = FakeApi(), Events(), Clock()
    service = installs(store, api, events, clock)
    events.fail_next = True
    with pytest.raises(RuntimeError):
        await service.on_auth_code("code-2", source_id="event-a", occurred_at=1.0)
    assert (await service.outcome("code-2", 0))["status"] == "processing"
    # Redelivered at once, the claim still looks alive: come back later.
    with pytest.raises(RetryLater):
        await service.on_auth_code("code-2", source_id="event-a", occurred_at=1.0)
    # Redelivered after the bus's retry delays: it resumes from the sealed exchange result.
    clock.now += CLAIM_FRESH_S + 1
    await service.on_auth_code("code-2", source_id="event-a", occurred_at=1.0)
    assert api.exchanges == 1
    [(kind, granted)] = events.published
    assert kind == "auth.granted"
    sealed: Any = granted.model_dump()["permanent_code_sealed"]
    assert BOX.open(sealed, context="bus/permanent_code/wwcorp") == "perm-for-code-2"
    record = await AuthRepository(store, BOX).installation("wwcorp")
    assert record is not None
    assert record.permanent_code == "perm-for-code-2"


async def test_a_used_code_is_recorded_as_expired_not_failed(store: SQLiteStore) -> None:
    """A code WeCom says is used up is recorded as expired and publishes no event."""
    api, events = FakeApi(), Events()
    api.used.add("code-3")
    service = installs(store, api, events)
    await service.on_auth_code("code-3", source_id="event-x", occurred_at=1.0)
    assert (await service.outcome("code-3", 0))["status"] == "expired"
    assert events.published == []


async def test_twin_deliveries_of_one_event_do_not_report_a_used_code(store: SQLiteStore) -> None:
    """A reload republishes install.redirect under the same id: both copies hold the claim;
    the one that loses the exchange (40029) must not overwrite the install's outcome."""
    api, events = FakeApi(), Events()
    service = installs(store, api, events)
    first, second = await asyncio.gather(
        service.on_auth_code("code-4", source_id="same", occurred_at=1.0),
        service.on_auth_code("code-4", source_id="same", occurred_at=1.0),
        return_exceptions=True,
    )
    assert first is None
    assert isinstance(second, RetryLater)  # it comes back later and finds the outcome
    assert api.exchanges == 1
    assert (await service.outcome("code-4", 0))["status"] == "installed"
    await service.on_auth_code("code-4", source_id="same", occurred_at=1.0)
    assert api.exchanges == 1


async def test_a_failed_auth_info_after_a_v2_exchange_keeps_the_permanent_code(
    store: SQLiteStore,
) -> None:
    """v2 answers without the agent; if get_auth_info then fails, the redelivery completes
    from the stored result and never exchanges the (used) code again."""
    api, events, clock = FakeApi(v2=True), Events(), Clock()
    api.fail_completion = True
    service = installs(store, api, events, clock)
    with pytest.raises(WeComApiError):
        await service.on_auth_code("code-5", source_id="event-v2", occurred_at=1.0)
    clock.now += CLAIM_FRESH_S + 1
    await service.on_auth_code("code-5", source_id="event-v2", occurred_at=1.0)
    assert (api.exchanges, api.completions) == (1, 2)
    assert (await service.outcome("code-5", 0))["status"] == "installed"


async def test_a_failure_before_wecom_frees_the_claim_for_the_retry(store: SQLiteStore) -> None:
    """A WeCom failure known not to have arrived frees the claim, so a retry installs at once."""
    from shared.wecom.api import WeComUnavailable  # noqa: PLC0415

    api, events = FakeApi(), Events()
    service = installs(store, api, events)
    original = api.exchange

    async def unreachable(auth_code: str) -> Exchanged:
        api.exchange = original  # type: ignore[method-assign]
        raise WeComUnavailable("cannot connect", maybe_delivered=False)

    api.exchange = unreachable  # type: ignore[method-assign]
    with pytest.raises(WeComUnavailable):
        await service.on_auth_code("code-6", source_id="event-n", occurred_at=1.0)
    # The immediate retry claims it afresh instead of waiting out a 30 s claim.
    await service.on_auth_code("code-6", source_id="event-n", occurred_at=1.0)
    assert (await service.outcome("code-6", 0))["status"] == "installed"


async def test_a_cancel_redelivered_after_a_crash_still_publishes_the_revocation(
    store: SQLiteStore,
) -> None:
    """A cancel redelivered after failing to publish still emits auth.revoked and frees the corp."""
    api, events = FakeApi(), Events()
    service = installs(store, api, events)
    await service.on_auth_code("code-7", source_id="install", occurred_at=10.0)
    events.fail_next = True
    with pytest.raises(RuntimeError):
        await service.on_cancel_auth("wwcorp", source_id="cancel", occurred_at=20.0)
    await service.on_cancel_auth("wwcorp", source_id="cancel", occurred_at=20.0)
    assert [kind for kind, _ in events.published] == ["auth.granted", "auth.revoked"]
    quota = await service.quota()
    assert quota["corps"]["used"] == 1  # lifetime policy: still counted, but released
    ledger = await AuthRepository(store, BOX).ledger()
    assert not ledger.corps["wwcorp"].active


async def test_an_install_older_than_a_revocation_takes_no_slot(store: SQLiteStore) -> None:
    """An install stamped before the corp's revocation is ignored and leaves it inactive."""
    api, events = FakeApi(), Events()
    service = installs(store, api, events)
    await service.on_auth_code("code-8", source_id="install-1", occurred_at=10.0)
    await service.on_cancel_auth("wwcorp", source_id="cancel", occurred_at=20.0)
    await service.on_auth_code("code-9", source_id="install-old", occurred_at=15.0)
    assert (await service.outcome("code-9", 0))["status"] == "ignored"
    ledger = await AuthRepository(store, BOX).ledger()
    assert not ledger.corps["wwcorp"].active


class EchoingApi(FakeApi):
    """WeCom echoing each code's install-link state and naming its own corp and installer."""

    def __init__(
        self, states: dict[str, str | None], installers: dict[str, str], *, extra: bool = False
    ) -> None:
        super().__init__()
        self.states = states
        self.installers = installers
        self.extra = extra  # the visible range shows a second member besides the installer

    async def exchange(self, auth_code: str) -> Exchanged:
        base = await super().exchange(auth_code)
        user = self.installers.get(auth_code, "alice")
        return replace(
            base,
            corp_id=f"ww-{auth_code}",
            state=self.states.get(auth_code),
            installer_user_id=user,
            info=replace(base.info, members=(user, "colleague") if self.extra else (user,)),
        )


def _installs_with(store: SQLiteStore, api: FakeApi, events: Events, **options: Any) -> Installs:
    return Installs(
        AuthRepository(store, BOX),
        api,  # type: ignore[arg-type]
        BOX,
        events,
        limits=options.pop("limits", Limits()),
        test_corp_ids=frozenset(),
        clock=Clock(),
        **options,
    )


async def test_a_test_state_completes_one_auth_code_only(store: SQLiteStore) -> None:
    """A signed test state is trusted for the first code it completes; carried to a second
    code it makes no test install and brings no app_state."""
    api, events = EchoingApi({}, {}), Events()
    service = _installs_with(store, api, events)
    state = "i1t-signed-state"
    for code in ("first", "second"):
        await service.on_auth_code(
            code, source_id=code, occurred_at=1.0, state=state, state_test=True, app_state="c1"
        )
    granted = [payload.model_dump() for kind, payload in events.published if kind == "auth.granted"]
    assert [(g["corp_id"], g["test"], g["app_state"]) for g in granted] == [
        ("ww-first", True, "c1"),
        ("ww-second", False, None),
    ]


async def test_a_state_that_wecom_did_not_echo_for_the_code_is_not_trusted(
    store: SQLiteStore,
) -> None:
    """WeCom echoes the install link's state for each code: a test state on a code whose
    install carried another state (a formal one) does not make it a test install."""
    api, events = EchoingApi({"formal": "i1r-other"}, {}), Events()
    service = _installs_with(store, api, events)
    await service.on_auth_code(
        "formal", source_id="e", occurred_at=1.0, state="i1t-mine", state_test=True
    )
    [(_, granted)] = events.published
    assert granted.model_dump()["test"] is False


async def test_a_test_account_installing_by_create_auth_is_a_test_install(
    store: SQLiteStore,
) -> None:
    """TEST_ACCOUNTS recognises the developer's own account arriving by create_auth."""
    api, events = EchoingApi({}, {"dev": "me", "cust": "boss"}), Events()
    service = _installs_with(store, api, events, test_accounts=frozenset({"ww-dev:me"}))
    await service.on_auth_code("dev", source_id="a", occurred_at=1.0)
    await service.on_auth_code("cust", source_id="b", occurred_at=1.0)
    tests = [payload.model_dump()["test"] for _, payload in events.published]
    assert tests == [True, False]
    quota = await service.quota()
    assert (quota["corps"]["used"], quota["users"]["used"]) == (1, 1)
    assert quota["test_accounts"]["used"] == 1


async def test_an_installation_moves_between_test_and_released_within_the_limits(
    store: SQLiteStore,
) -> None:
    """set_test re-admits the installation against the other kind's limits."""
    api, events = EchoingApi({}, {}), Events()
    limits = Limits(corps=1, users=10, test_accounts=10)
    service = _installs_with(store, api, events, limits=limits)
    await service.on_auth_code("a", source_id="a", occurred_at=1.0)
    record, refusal = await service.set_test("ww-a", True)
    assert refusal is None
    assert record is not None
    assert record.test is True
    assert (await service.quota())["corps"]["used"] == 0
    await service.on_auth_code("b", source_id="b", occurred_at=2.0)
    _, refusal = await service.set_test("ww-a", False)
    assert refusal is not None
    assert refusal.limit == "corps"
    found = await AuthRepository(store, BOX).installation("ww-a")
    assert found is not None
    assert found.test is True
    assert await service.set_test("ww-none", True) == (None, None)


class DyingApi(FakeApi):
    """WeCom answers the exchange, and the claimant dies before it can store the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.die_once = True

    async def exchange(self, auth_code: str) -> Exchanged:
        answer = await super().exchange(auth_code)
        if self.die_once:
            self.die_once = False
            raise asyncio.CancelledError  # the process is killed: nothing after this runs
        return answer


async def test_a_claimant_killed_after_wecom_answered_is_a_lost_install_not_silence(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The exchange was recorded as sent; the resumed claim is answered 40029: an error log,
    auth.lost with the app_state, and the outcome says lost (install again)."""
    api, events, clock = DyingApi(), Events(), Clock()
    service = installs(store, api, events, clock)
    with pytest.raises(asyncio.CancelledError):
        await service.on_auth_code("code-l", source_id="ev", occurred_at=1.0, app_state="spring")
    record = await AuthRepository(store, BOX).code_record("code-l")
    assert record is not None
    assert record.status == "sent"
    clock.now += CLAIM_FRESH_S + 1
    await service.on_auth_code("code-l", source_id="ev", occurred_at=1.0, app_state="spring")
    assert api.exchanges == 2
    [(kind, lost)] = events.published
    assert kind == "auth.lost"
    assert lost.model_dump() == {
        "corp_id": None,
        "reason": lost.model_dump()["reason"],
        "app_state": "spring",
    }
    assert "install the app again" in lost.model_dump()["reason"]
    outcome = await service.outcome("code-l", 0)
    assert outcome["status"] == "lost"


async def test_a_change_auth_for_a_corp_we_never_recorded_lists_it_lost(
    store: SQLiteStore,
) -> None:
    """WeCom changes only grants it holds: an unknown corp's change_auth is a lost install,
    listed with status lost until the member installs again."""
    api, events = FakeApi(), Events()
    service = installs(store, api, events)
    await service.on_change_auth("wwcorp", source_id="chg", occurred_at=5.0)
    repository = AuthRepository(store, BOX)
    found = await repository.installation("wwcorp")
    assert found is not None
    assert found.status == "lost"
    assert [kind for kind, _ in events.published] == ["auth.lost"]
    await service.on_auth_code("code-again", source_id="again", occurred_at=3.0)
    again = await repository.installation("wwcorp")
    assert again is not None
    assert again.status == "active"


async def test_a_quota_warning_fires_once_per_crossing_across_two_processes(
    store: SQLiteStore,
) -> None:
    """Twenty installs (each with a second visible member) racing on two auth_service
    instances sharing one store: each of the 80 % and 100 % thresholds of each limit is
    announced exactly once."""
    api, events = EchoingApi({}, {}, extra=True), Events()
    limits = Limits(corps=10, users=20, test_accounts=10)
    one = _installs_with(store, api, events, limits=limits)
    two = _installs_with(store, api, events, limits=limits)
    await asyncio.gather(
        *(
            (one if index % 2 else two).on_auth_code(
                f"c{index}", source_id=f"e{index}", occurred_at=1.0
            )
            for index in range(20)
        )
    )
    warnings = sorted(
        (payload.model_dump()["limit"], payload.model_dump()["level"])
        for kind, payload in events.published
        if kind == "auth.quota_warning"
    )
    assert warnings == [("corps", 80), ("corps", 100), ("users", 80), ("users", 100)]


async def test_metrics_count_installations_admissions_quota_exchanges_and_lost_installs(
    store: SQLiteStore,
) -> None:
    """Each install, refusal, exchange outcome and lost install shows in the metrics."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from auth_service.metrics import AuthMetrics  # noqa: PLC0415

    registry = CollectorRegistry()
    api, events = EchoingApi({}, {}), Events()
    service = _installs_with(
        store, api, events, limits=Limits(corps=1), metrics=AuthMetrics.create(registry)
    )
    await service.on_auth_code("one", source_id="a", occurred_at=1.0)
    await service.on_auth_code("two", source_id="b", occurred_at=1.0)
    api.used.add("three")
    await service.on_auth_code("three", source_id="c", occurred_at=1.0)
    await service.on_change_auth("wwgone", source_id="d", occurred_at=1.0)
    await service.refresh_metrics()

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("wecom_auth_installations", status="active", kind="released") == 1
    assert sample("wecom_auth_installations", status="refused", kind="released") == 1
    assert sample("wecom_auth_installations", status="lost", kind="released") == 1
    assert (
        sample("wecom_auth_admissions_total", kind="released", outcome="refused", reason="corps")
        == 1
    )
    assert sample("wecom_auth_quota_used", limit="corps") == 1
    assert sample("wecom_auth_quota_limit", limit="corps") == 1
    assert sample("wecom_auth_exchanges_total", outcome="exchanged") == 2
    assert sample("wecom_auth_exchanges_total", outcome="unusable") == 1
    assert sample("wecom_auth_lost_installs_total") == 1
