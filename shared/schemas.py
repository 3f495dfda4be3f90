"""Export of the JSON Schemas of the public contracts: ``python -m shared.schemas DIR``.

Writes ``envelope.json`` for :class:`~shared.contracts.EventEnvelope` and ``<event type>.json``
for every model in :data:`~shared.contracts.PAYLOAD_MODELS`. The output is deterministic
(sorted keys, 2-space indent, trailing newline) so that the committed copies in
``docs/schemas/`` can be compared byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from shared.contracts import PAYLOAD_MODELS, EventEnvelope

__all__ = ["export_schemas", "main", "render_schema"]

ENVELOPE_SCHEMA = "envelope"


def render_schema(model: type[BaseModel]) -> str:
    """The JSON Schema text of ``model`` as it is published on the bus (its serialised form)."""
    schema = model.model_json_schema(mode="serialization")
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write the schema of the envelope and of every payload model into ``directory``.

    Args:
        directory: created if missing; files of the same names are overwritten, others left.

    Returns:
        The paths written, envelope first, then payloads sorted by event type.
    """
    directory.mkdir(parents=True, exist_ok=True)
    models: list[tuple[str, type[BaseModel]]] = [(ENVELOPE_SCHEMA, EventEnvelope)]
    models.extend(sorted(PAYLOAD_MODELS.items()))
    written = []
    for name, model in models:
        path = directory / f"{name}.json"
        path.write_text(render_schema(model), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.schemas", description="Export the JSON Schemas of the contracts."
    )
    parser.add_argument("directory", type=Path, help="where to write the .json files")
    args = parser.parse_args(argv)
    written = export_schemas(args.directory)
    sys.stdout.write(f"wrote {len(written)} schemas to {args.directory}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
