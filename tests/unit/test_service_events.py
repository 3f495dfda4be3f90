"""The one builder and publisher of service events, and the event-type names of the contracts."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

import shared.contracts
from shared.bus.abc import Delivery, Message
from shared.bus.events import EVENT_HEADERS, event_message, publish_event
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY, EVENTS_EXCHANGE, Binding, QueueSpec, Topology
from shared.contracts import (
    PAYLOAD_MODELS,
    SCHEMA_VERSION,
    SERVICE_EVENT_MODELS,
    AuthRevokedPayload,
    EventEnvelope,
    InstallRedirectPayload,
    event_types,
    service_event,
    stable_event_id,
)
from shared.schemas import EVENT_MODELS, MESSAGE_MODELS

OCCURRED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 25, 10, 0, 1, tzinfo=UTC)


def _revoked() -> EventEnvelope:
    return service_event(
        event_types.AUTH_REVOKED,
        AuthRevokedPayload(corp_id="wpcorp", reason="uninstalled"),
        event_id=stable_event_id(event_types.AUTH_REVOKED, "source-1", "wpcorp"),
        suite_id="wwsuite",
        corp_id="wpcorp",
        occurred_at=OCCURRED,
        received_at=RECEIVED,
    )


def test_stable_event_id_is_the_sha256_of_type_and_causes_by_line() -> None:
    """The ids auth_service and the gateway always derived: type and causes, newline-joined."""
    assert stable_event_id("auth.granted", "src", "wpcorp") == (
        hashlib.sha256(b"auth.granted\nsrc\nwpcorp").hexdigest()
    )
    # A suite-wide event (no corp) keeps the id it had before: None counts as "None".
    assert stable_event_id("auth.quota_warning", "src/corps", None) == (
        hashlib.sha256(b"auth.quota_warning\nsrc/corps\nNone").hexdigest()
    )
    assert stable_event_id("install.redirect", "code") == (
        hashlib.sha256(b"install.redirect\ncode").hexdigest()
    )


def test_service_event_wraps_the_payload_dump_in_the_envelope() -> None:
    """Type, ids, times and the snake_case payload land in the envelope; raw stays empty."""
    envelope = _revoked()
    assert envelope.type == "auth.revoked"
    assert (envelope.suite_id, envelope.corp_id) == ("wwsuite", "wpcorp")
    assert (envelope.occurred_at, envelope.received_at) == (OCCURRED, RECEIVED)
    assert envelope.payload == {"corp_id": "wpcorp", "reason": "uninstalled"}
    assert envelope.raw == {}
    assert json.loads(envelope.model_dump_json())["schema"] == SCHEMA_VERSION


def test_service_event_is_received_when_it_occurred_unless_told() -> None:
    """A service that learns of an event as it makes it gives one time for both."""
    envelope = service_event(
        event_types.INSTALL_REDIRECT,
        InstallRedirectPayload(auth_code="code"),
        event_id="id-1",
        suite_id="wwsuite",
        corp_id=None,
        occurred_at=OCCURRED,
    )
    assert envelope.received_at == OCCURRED
    assert envelope.corp_id is None


def test_event_message_carries_the_documented_properties() -> None:
    """message_id = event id, type = event type, JSON body, the schema header, a timestamp."""
    envelope = _revoked()
    message = event_message(envelope)
    assert message.message_id == envelope.id
    assert message.type == "auth.revoked"
    assert message.content_type == "application/json"
    assert dict(message.headers) == {"schema": 1}
    assert message.timestamp == RECEIVED
    assert EventEnvelope.model_validate_json(message.body) == envelope


def test_event_headers_cannot_be_changed_by_a_publisher() -> None:
    """The headers are shared by every message, so nobody may write into them."""
    with pytest.raises(TypeError):
        EVENT_HEADERS["schema"] = 2  # type: ignore[index]
    assert EVENT_HEADERS == {"schema": 1}


async def test_publish_event_routes_on_wecom_events_by_type() -> None:
    """A queue bound to the event type receives the message publish_event sends."""
    queue = QueueSpec("test.revoked", bindings=(Binding(EVENTS_EXCHANGE, "auth.revoked"),))
    bus = InProcessBus(BASE_TOPOLOGY.merged(Topology(queues=(queue,))))
    await bus.start()
    received: asyncio.Queue[Message] = asyncio.Queue()

    async def take(delivery: Delivery) -> None:
        await received.put(delivery.message)

    try:
        await bus.consume("test.revoked", take)
        envelope = _revoked()
        await publish_event(bus, envelope)
        message = await asyncio.wait_for(received.get(), timeout=5)
    finally:
        await bus.close()
    assert message.message_id == envelope.id
    assert message.headers["schema"] == 1
    assert EventEnvelope.model_validate_json(message.body) == envelope


def test_every_registered_type_is_a_named_constant() -> None:
    """Registries, schemas and consumers spell each type through event_types, not literals."""
    names = {
        value
        for name, value in vars(event_types).items()
        if name.isupper() and isinstance(value, str)
    }
    assert set(PAYLOAD_MODELS) <= names
    assert set(SERVICE_EVENT_MODELS) <= names
    assert set(EVENT_MODELS) | set(MESSAGE_MODELS) == names
    constants = [name for name in vars(event_types) if name.isupper()]
    assert len(constants) == len(names), "two constants name the same type"


def _defined_names(path: Path) -> set[str]:
    """The public names a module defines at its top level (not those it imports)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


def test_the_package_re_exports_every_public_name() -> None:
    """`from shared.contracts import X` works for everything its modules make public."""
    package = Path(shared.contracts.__file__).parent
    modules = sorted(path for path in package.glob("*.py") if path.name != "__init__.py")
    assert modules, "no modules found"
    for path in modules:
        missing = _defined_names(path) - set(shared.contracts.__all__)
        assert not missing, f"{path.name}: {sorted(missing)}"
        for name in _defined_names(path):
            assert hasattr(shared.contracts, name), name
