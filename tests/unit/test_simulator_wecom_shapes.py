"""The shape comparison behind the WeCom-example tests, and the recorded examples themselves."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.wecom_shapes import json_type, load_examples, shape_mismatches

EXAMPLE = {
    "errcode": 0,
    "expires_in": 7200,
    "ok": False,
    "info": {"corpid": "x", "agent": [{"agentid": 1, "shared_from": {"corpid": "y"}}]},
    "admins": [{"userid": "a", "auth_type": 1}],
}


def answer(**changes: object) -> dict[str, object]:
    """A copy of EXAMPLE (through JSON, as an answer arrives) with top-level changes."""
    copy: dict[str, object] = json.loads(json.dumps(EXAMPLE))
    copy.update(changes)
    return copy


def test_the_same_shape_with_other_values_matches() -> None:
    """Values do not matter, key names and types do."""
    other = answer(expires_in=1, ok=True, admins=[{"userid": "b", "auth_type": 0}] * 3)
    assert shape_mismatches(other, EXAMPLE) == []


def test_a_float_where_wecom_shows_an_integer_is_a_mismatch() -> None:
    """7200.0 is not 7200: the issue's very bug."""
    decoded = json.loads('{"expires_in": 7200.0}')
    assert shape_mismatches(decoded, {"expires_in": 7200}) == [
        "expires_in: float where the example has int"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "bool"), (1, "int"), (1.0, "float"), ("1", "str"), ([], "list"), ({}, "object")],
)
def test_json_types_keep_bool_apart_from_int(value: object, expected: str) -> None:
    """Python's bool is an int; JSON's true is not a number."""
    assert json_type(value) == expected
    assert json_type(None) == "null"


def test_bool_int_and_string_swaps_are_mismatches() -> None:
    """A 0 for false, a string for a number, a list for an object are each reported."""
    wrong = answer(ok=0, errcode="0", info=[])
    assert shape_mismatches(wrong, EXAMPLE) == [
        "errcode: str where the example has int",
        "info: list where the example has object",
        "ok: int where the example has bool",
    ]


def test_missing_and_extra_keys_are_reported_at_any_depth() -> None:
    """A key the example lacks, or lacks in a nested list element, is a mismatch."""
    wrong = answer(extra=1, info={"corpid": "x", "agent": [{"agentid": 1}]})
    assert shape_mismatches(wrong, EXAMPLE) == [
        "extra: not in the example",
        "info.agent[].shared_from: missing (element 0)",
    ]


def test_allowed_omissions_may_be_absent_but_not_wrong() -> None:
    """A listed path may be missing; present, it is still compared."""
    lacking = answer(info={"corpid": "x", "agent": [{"agentid": 1}]})
    wrong = answer(info={"corpid": "x", "agent": [{"agentid": 1, "shared_from": 1}]})
    omit = {"info.agent[].shared_from": "only for shared apps"}
    assert shape_mismatches(lacking, EXAMPLE, may_omit=omit) == []
    assert shape_mismatches(wrong, EXAMPLE, may_omit=omit) == [
        "info.agent[].shared_from: int where the example has object (element 0)"
    ]


def test_list_elements_match_any_documented_element() -> None:
    """An element may take the shape of any element of the example's list."""
    example = {"agent": [{"agentid": 1, "privilege": {}}, {"agentid": 2, "appid": 5}]}
    assert shape_mismatches({"agent": [{"agentid": 3, "appid": 1}]}, example) == []
    assert shape_mismatches({"agent": [{"agentid": "3"}]}, example) != []


def test_every_example_names_its_page_or_its_source() -> None:
    """A fixture has a numeric page id with its URL, or no id and the source it came from."""
    examples = load_examples()
    assert len(examples) >= 18
    for example in examples:
        assert example.endpoint.startswith("/cgi-bin/"), example.name
        assert example.method in ("GET", "POST"), example.name
        if example.page_id is None:
            assert example.url is None, example.name
            assert "wecom-protocol.md §" in (example.source or ""), example.name
        else:
            assert re.fullmatch(r"\d+", example.page_id), example.name
            assert example.url is not None, example.name
            assert example.url.endswith(f"/{example.page_id}"), example.name
        if example.errcode_on_success:
            assert example.expected["errcode"] == 0, example.name
        else:
            assert "errcode" not in example.expected, example.name
