"""Compare a JSON answer's shape with a documented example: key names and JSON types.

Values are ignored, types are not: ``7200.0`` is a JSON float where WeCom documents the
integer ``7200``, and that is a mismatch. The recorded examples live in
``tests/fixtures/wecom_examples/`` (one per endpoint, with its doc page id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "wecom_examples"


# bool before int: Python's bool is an int, JSON's true is not a number.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float"),
    (str, "str"),
    (list, "list"),
    (dict, "object"),
)


def json_type(value: object) -> str:
    """The JSON type of a decoded value: null, bool, int, float, str, list or object."""
    if value is None:
        return "null"
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    raise TypeError(f"not a decoded JSON value: {type(value).__name__}")


def shape_mismatches(
    actual: object, example: object, *, may_omit: Mapping[str, str] | None = None
) -> list[str]:
    """Every difference in key names and JSON types between ``actual`` and ``example``.

    Objects must have exactly the example's keys, except those whose path is in
    ``may_omit`` (path → why the answer may lack it), which may be absent. Every element of
    an answer's list must match the shape of one of the example list's elements; an empty
    list on either side says nothing about elements and matches. Paths look like
    ``auth_info.agent[].privilege``.
    """
    return _mismatches(actual, example, "", may_omit or {})


def _mismatches(
    actual: object, example: object, path: str, may_omit: Mapping[str, str]
) -> list[str]:
    where = path or "(top)"
    kind, expected = json_type(actual), json_type(example)
    if kind != expected:
        return [f"{where}: {kind} where the example has {expected}"]
    if isinstance(actual, dict) and isinstance(example, dict):
        return _object_mismatches(actual, example, path, may_omit)
    if isinstance(actual, list) and isinstance(example, list):
        return _list_mismatches(actual, example, path, may_omit)
    return []


def _object_mismatches(
    actual: dict[str, Any], example: dict[str, Any], path: str, may_omit: Mapping[str, str]
) -> list[str]:
    found: list[str] = []
    prefix = f"{path}." if path else ""
    for key in sorted(example.keys() - actual.keys()):
        if f"{prefix}{key}" not in may_omit:
            found.append(f"{prefix}{key}: missing")
    found.extend(f"{prefix}{key}: not in the example" for key in sorted(actual.keys() - example))
    for key in sorted(actual.keys() & example.keys()):
        found.extend(_mismatches(actual[key], example[key], f"{prefix}{key}", may_omit))
    return found


def _list_mismatches(
    actual: list[Any], example: list[Any], path: str, may_omit: Mapping[str, str]
) -> list[str]:
    if not example:
        return []
    found: list[str] = []
    for index, element in enumerate(actual):
        tries = [_mismatches(element, shape, f"{path}[]", may_omit) for shape in example]
        if all(tries):
            # Report against the closest example element.
            closest = min(tries, key=len)
            found.extend(f"{problem} (element {index})" for problem in closest)
    return found


@dataclass(frozen=True)
class WeComExample:
    """One recorded example: where it comes from and the answer it documents."""

    name: str
    endpoint: str
    method: str
    page_id: str | None
    url: str | None
    source: str | None
    errcode_on_success: bool
    example: dict[str, Any]

    @property
    def expected(self) -> dict[str, Any]:
        """The success answer's shape: without errcode/errmsg where WeCom omits them."""
        if self.errcode_on_success:
            return self.example
        return {k: v for k, v in self.example.items() if k not in ("errcode", "errmsg")}


def load_examples() -> list[WeComExample]:
    """Every fixture in ``tests/fixtures/wecom_examples/``, by file name."""
    examples = []
    for path in sorted(EXAMPLES.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        examples.append(
            WeComExample(
                name=path.stem,
                endpoint=doc["endpoint"],
                method=doc["method"],
                page_id=doc["page_id"],
                url=doc["url"],
                source=doc.get("source"),
                errcode_on_success=doc.get("errcode_on_success", True),
                example=doc["example"],
            )
        )
    return examples
