"""Listing domains go through IDNA 2008 (the ``idna`` package), not the stdlib IDNA 2003 codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.listing import clean_listing
from wecom_suite.listing.checks import check_listing
from wecom_suite.listing.domains import ascii_domain, domain_problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2003 maps ß to ss: "fass.de", another domain
        ("例子.中国", "xn--fsqu00a.xn--fiqs8s"),
        ("App.Example.COM", "app.example.com"),  # UTS 46 maps what users type
        ("ＡＰＰ.example.com", "app.example.com"),  # full-width letters
        ("XN--FSQU00A.xn--fiqs8s", "xn--fsqu00a.xn--fiqs8s"),
    ],
)
def test_ascii_domain_is_the_idna_2008_form(value: str, expected: str) -> None:
    """The ASCII form WeCom stores is IDNA 2008's, after UTS 46 mapping."""
    assert ascii_domain(value) == expected
    assert domain_problem(value) is None


def test_the_stdlib_codec_disagrees_on_sharp_s() -> None:
    """Why the library: the stdlib codec would silently check a different domain."""
    assert "faß.de".encode("idna") == b"fass.de"
    assert ascii_domain("faß.de") != "fass.de"


@pytest.mark.parametrize(
    "value",
    [
        "☃.net",  # a symbol: IDNA 2003 gives xn--n3h.net, IDNA 2008 disallows it
        "ex\u200dample.com",  # a zero-width joiner outside the script that needs it
        "xn--a.com",  # punycode that decodes to a control character
        "ab--cd.com",  # "--" in 3rd and 4th position is reserved for xn--
    ],
    ids=["symbol", "joiner", "bad-a-label", "reserved-hyphens"],
)
def test_names_only_idna_2003_accepts_are_a_label_finding(value: str) -> None:
    """Names the stdlib codec encodes but IDNA 2008 refuses are invalid domains."""
    assert value.encode("idna")  # IDNA 2003 lets them through
    assert ascii_domain(value) is None
    assert domain_problem(value) == "domain.label"


def test_invalid_label_gives_the_same_finding_as_any_invalid_domain(tmp_path: Path) -> None:
    """An IDNA error is reported like every other bad domain: domain.label with the value."""
    listing = clean_listing()
    listing["trusted_domain"] = "☃.net"
    listing["install_callback_domain"] = "app_example.com"
    findings = [
        finding for finding in check_listing(listing, tmp_path) if finding.rule.startswith("domain")
    ]
    assert [(item.rule, item.field, dict(item.params)) for item in findings] == [
        ("domain.label", "trusted_domain", {"value": "☃.net"}),
        ("domain.label", "install_callback_domain", {"value": "app_example.com"}),
    ]
