"""The listing's keys and types come from one pydantic model; its errors become key.* findings."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tests.support.listing import clean_listing
from wecom_suite.listing.checks import check_structure
from wecom_suite.listing.rules import LISTING_KEYS, OPTIONAL_KEYS, ListingFile


def findings(listing: dict[str, Any]) -> list[tuple[str, str, dict[str, str | int]]]:
    """(rule, field, params) of each structure finding."""
    return [(f.rule, f.field, dict(f.params)) for f in check_structure(listing)[0]]


def test_the_clean_listing_validates_as_the_model() -> None:
    """The reference listing is exactly what the model describes."""
    assert ListingFile.model_validate(clean_listing()).screenshots.desktop == ["images/d1.png"]


def test_key_table_is_derived_from_the_model() -> None:
    """Every model field, nested ones dotted, with its kind; optional ones have defaults."""
    assert LISTING_KEYS["screenshots"] == "mapping"
    assert LISTING_KEYS["screenshots.mobile"] == "list"
    assert LISTING_KEYS["name"] == "text"
    assert set(LISTING_KEYS) - {"screenshots.mobile", "screenshots.desktop"} == set(
        ListingFile.model_fields
    )
    assert sorted(OPTIONAL_KEYS) == ["ip_allowlist", "menus"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("name", datetime.date(2024, 1, 1), ("key.type", "name", {"type": "text"})),
        ("slogan", 10, ("key.type", "slogan", {"type": "text"})),
        ("screenshots", None, ("key.type", "screenshots", {"type": "mapping"})),
        ("menus", "首页", ("key.type", "menus", {"type": "list"})),
        ("ip_allowlist", [119], ("key.type", "ip_allowlist[0]", {"type": "text"})),
    ],
)
def test_values_are_never_coerced(
    key: str, value: object, expected: tuple[str, str, dict[str, str]]
) -> None:
    """Strict validation: a YAML number or date where text belongs is a wrong type."""
    listing = clean_listing()
    listing[key] = value
    assert findings(listing) == [expected]


def test_a_non_text_key_inside_screenshots_is_unknown() -> None:
    """YAML's ``1: x`` gives an integer key; it is reported by its path like any typo."""
    listing = clean_listing()
    listing["screenshots"][1] = []
    assert findings(listing) == [("key.unknown", "screenshots.1", {})]


def test_a_dotted_top_level_key_does_not_stand_in_for_the_nested_one() -> None:
    """``screenshots.mobile:`` at the top level is a typo, not the phone screenshots."""
    listing = clean_listing()
    listing["screenshots.mobile"] = listing["screenshots"].pop("mobile")
    assert findings(listing) == [
        ("key.unknown", "screenshots.mobile", {}),
        ("key.missing", "screenshots.mobile", {}),
    ]


def test_unknown_keys_come_first_in_file_order_then_schema_order() -> None:
    """The report lists typos where they stand in the file, then the rest key by key."""
    listing = {"zz": 1, **clean_listing(), "aa": 2}
    listing["screenshots"]["tablet"] = []
    del listing["slogan"]
    listing["name"] = 3
    assert [(rule, field) for rule, field, _ in findings(listing)] == [
        ("key.unknown", "zz"),
        ("key.unknown", "screenshots.tablet"),
        ("key.unknown", "aa"),
        ("key.type", "name"),
        ("key.missing", "slogan"),
    ]


def test_well_typed_values_remain_and_bad_list_entries_are_dropped() -> None:
    """What is left to check: every well-typed value, lists without their bad entries."""
    listing = clean_listing()
    listing["menus"] = ["首页", 3, "我的"]
    listing["name"] = 2024
    _, valid = check_structure(listing)
    assert valid["menus"] == ["首页", "我的"]
    assert "name" not in valid
    assert valid["screenshots.desktop"] == ["images/d1.png"]
