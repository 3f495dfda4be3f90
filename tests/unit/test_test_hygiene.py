"""The test suite's own rules, checked on its source: every test says what it proves."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _undocumented_tests() -> list[str]:
    missing = []
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.name.startswith("test") and not (ast.get_docstring(node) or "").strip():
                missing.append(f"{path.relative_to(TESTS.parent)}:{node.lineno} {node.name}")
    return missing


def test_every_test_function_has_a_docstring() -> None:
    """A test without a docstring fails here: each one states the behaviour it proves."""
    assert _undocumented_tests() == []


def test_the_docstring_check_sees_the_tests_of_every_suite() -> None:
    """The walk covers unit, contract, integration and e2e tests, so none slips past it."""
    suites = {path.parent.name for path in TESTS.rglob("test_*.py")}
    assert {"unit", "contract", "integration", "e2e"} <= suites
