"""docs/security.md names the test that proves each control: every name must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
# `tests/x.py::test_a` and the `::test_b` that follow it on the same bullet.
_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)?)`|`::(\w+)`")


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_test_the_security_doc_names_exists() -> None:
    """A control's proof that was renamed or deleted makes the doc lie: it must fail here."""
    missing: list[str] = []
    current: Path | None = None
    checked = 0
    for match in _REFERENCE.finditer(DOC.read_text(encoding="utf-8")):
        file, first, later = match.groups()
        if file is not None:
            current = ROOT / file
            if not current.exists():
                missing.append(file)
                continue
            name = first.removeprefix("::") if first else None
        else:
            name = later
        if name is None or current is None or not current.exists():
            continue
        checked += 1
        if name not in _functions(current):
            missing.append(f"{current.relative_to(ROOT)}::{name}")
    assert checked >= 20
    assert missing == []
