"""Tests of the JSON Schema export and of the committed copies in docs/schemas/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.schemas import (
    ENVELOPE_SCHEMA,
    EVENT_MODELS,
    MESSAGE_MODELS,
    export_schemas,
    main,
    render_event_catalogue,
)

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_committed_schemas_are_up_to_date(tmp_path: Path) -> None:
    """A model changed without re-running `python -m shared.schemas docs/schemas` fails here."""
    for path in export_schemas(tmp_path):
        committed = COMMITTED / path.name
        assert committed.is_file(), f"{committed} is missing"
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale"


def test_every_event_type_has_a_schema_file() -> None:
    """Consumers find the payload of each type at docs/schemas/<type>.json."""
    for event_type in [ENVELOPE_SCHEMA, *EVENT_MODELS, *MESSAGE_MODELS]:
        assert (COMMITTED / f"{event_type}.json").is_file(), event_type


def test_export_writes_the_envelope_then_payloads_sorted(tmp_path: Path) -> None:
    """The order and the file names are stable, one file per model."""
    written = export_schemas(tmp_path / "new")
    assert [path.name for path in written] == [
        f"{name}.json" for name in [ENVELOPE_SCHEMA, *sorted(EVENT_MODELS), *sorted(MESSAGE_MODELS)]
    ]
    assert all(path.parent == tmp_path / "new" for path in written)


def test_schemas_are_deterministic_json(tmp_path: Path) -> None:
    """Sorted keys, 2-space indent and a trailing newline make diffs reviewable."""
    path = export_schemas(tmp_path)[0]
    text = path.read_text("utf-8")
    schema = json.loads(text)
    assert text == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    # The envelope is published with its alias: "schema", not "schema_version".
    assert "schema" in schema["properties"]


def test_payload_schemas_describe_the_snake_case_dump(tmp_path: Path) -> None:
    """The published payload uses field names, and every field is always present."""
    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "data.message.text.json").read_text("utf-8"))
    assert set(schema["properties"]) == {"user_id", "agent_id", "msg_id", "content"}
    assert set(schema["required"]) == set(schema["properties"])


def test_the_command_line_exports_into_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m shared.schemas DIR` is the way to refresh docs/schemas."""
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / "envelope.json").is_file()
    total = len(EVENT_MODELS) + len(MESSAGE_MODELS) + 1
    assert f"wrote {total} schemas" in capsys.readouterr().out


def test_event_catalogue_in_docs_is_up_to_date() -> None:
    """docs/events.md lists exactly the typed events of shared/contracts.py."""
    doc = (COMMITTED.parent / "events.md").read_text("utf-8")
    _, _, table = doc.partition("## Typed events")
    assert "## Typed events" + table == render_event_catalogue()
