"""Each listing rule: a clean listing passes; breaking one rule yields exactly that finding."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.support.listing import SIZES, clean_listing, save_image
from wecom_suite.listing.checks import check_listing, check_provider_credentials
from wecom_suite.listing.findings import Finding, errors
from wecom_suite.listing.rules import MIB

Check = Callable[[dict[str, Any]], list[tuple[str, str]]]


@pytest.fixture
def check(folder: Path) -> Check:
    """Check a listing against ``folder``; (rule, field) of each finding."""

    def run(listing: dict[str, Any]) -> list[tuple[str, str]]:
        return [(finding.rule, finding.field) for finding in check_listing(listing, folder)]

    return run


def test_clean_listing_has_no_findings(check: Check) -> None:
    """The reference listing breaks no rule, so every other case isolates one rule."""
    assert check(clean_listing()) == []


def test_optional_keys_may_be_absent(check: Check) -> None:
    """Custom menus and the IP allow-list are optional in the developer centre."""
    listing = clean_listing()
    del listing["menus"], listing["ip_allowlist"]
    assert check(listing) == []


def test_unknown_key_is_a_finding(check: Check) -> None:
    """A typo such as ``slogna`` must not silently skip the slogan checks."""
    listing = clean_listing()
    listing["slogna"] = "x"
    assert check(listing) == [("key.unknown", "slogna")]


def test_unknown_nested_key_is_a_finding(check: Check) -> None:
    """Unknown keys are found inside ``screenshots`` too, by their dotted path."""
    listing = clean_listing()
    listing["screenshots"]["tablet"] = []
    assert check(listing) == [("key.unknown", "screenshots.tablet")]


@pytest.mark.parametrize("key", ["slogan", "privacy_policy", "trusted_domain"])
def test_missing_key_is_a_finding(check: Check, key: str) -> None:
    """Every required key must be present."""
    listing = clean_listing()
    del listing[key]
    assert check(listing) == [("key.missing", key)]


def test_missing_nested_key_is_a_finding(check: Check) -> None:
    """Desktop screenshots are required even though only phone ones are counted strictly."""
    listing = clean_listing()
    del listing["screenshots"]["desktop"]
    assert check(listing) == [("key.missing", "screenshots.desktop")]


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("name", 2024, "name"),
        ("screenshots", ["a.png"], "screenshots"),
        ("menus", ["首页", 3], "menus[1]"),
    ],
)
def test_wrong_type_is_a_finding(check: Check, key: str, value: object, field: str) -> None:
    """A value of the wrong type is reported once, at its own path, and not checked further."""
    listing = clean_listing()
    listing[key] = value
    assert check(listing) == [("key.type", field)]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "会"),
        ("name", "一二三四五六七八九十十"),
        ("slogan", "高效安排会议与日程提醒"),
        ("introduction", "太短了"),
        ("introduction", "很" * 121),
        ("category", ""),
    ],
)
def test_text_outside_its_length_is_a_finding(check: Check, key: str, value: str) -> None:
    """Lengths count characters, one per Chinese character, as WeCom's form does."""
    listing = clean_listing()
    listing[key] = value
    assert check(listing) == [("text.length", key)]


def test_texts_at_their_limits_pass(check: Check) -> None:
    """The limits are inclusive: 10 characters of name and 120 of introduction pass."""
    listing = clean_listing()
    listing.update(name="一二三四五六七八九十", slogan="ab", introduction="很" * 120)
    assert check(listing) == []


def test_special_character_in_name_is_a_finding(check: Check) -> None:
    """Names allow letters, digits and spaces only."""
    listing = clean_listing()
    listing["name"] = "会议★助手"
    assert check(listing) == [("text.special_chars", "name")]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "企业微信助手"),
        ("name", "ＷＥＣＨＡＴ助手"),
        ("name", "微 信助手"),
        ("slogan", "微\u200b信会议"),
        ("slogan", "永久免费用"),
        ("menus[1]", "热门 推荐"),
    ],
)
def test_banned_word_is_one_finding(check: Check, field: str, value: str) -> None:
    """Banned words match across case, width, spaces and invisible characters, once per field."""
    listing = clean_listing()
    if field.startswith("menus"):
        listing["menus"][1] = value
    else:
        listing[field] = value
    assert check(listing) == [("text.banned_word", field)]


def test_missing_files_are_findings(check: Check, folder: Path) -> None:
    """A missing screenshot or privacy policy is named by its field path."""
    (folder / "images" / "m3.png").unlink()
    (folder / "privacy.pdf").unlink()
    assert check(clean_listing()) == [
        ("file.missing", "screenshots.mobile[2]"),
        ("file.missing", "privacy_policy"),
    ]


def test_corrupt_image_is_a_finding(check: Check, folder: Path) -> None:
    """Bytes that are not an image are reported, not raised."""
    (folder / "images" / "m3.png").write_bytes(b"not an image at all")
    assert check(clean_listing()) == [("image.corrupt", "screenshots.mobile[2]")]


def test_truncated_image_is_a_finding(check: Check, folder: Path) -> None:
    """A file cut short has a valid header, so only a full decode finds it."""
    path = folder / "images" / "logo.png"
    Image.frombytes("RGB", SIZES["logo"], os.urandom(750 * 750 * 3)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert check(clean_listing()) == [("image.corrupt", "logo")]


def test_gif_is_a_format_finding(check: Check, folder: Path) -> None:
    """Only JPEG and PNG content is accepted, whatever the extension."""
    save_image(folder / "images" / "logo.gif", SIZES["logo"], "GIF")
    listing = clean_listing()
    listing["logo"] = "images/logo.gif"
    assert check(listing) == [("image.format", "logo")]


def test_png_named_jpg_is_an_extension_finding(check: Check, folder: Path) -> None:
    """The format is read from the content; an extension that lies is reported."""
    save_image(folder / "images" / "d1.jpg", SIZES["desktop"], "PNG")
    listing = clean_listing()
    listing["screenshots"]["desktop"] = ["images/d1.jpg"]
    assert check(listing) == [("image.extension", "screenshots.desktop[0]")]


def test_jpeg_named_jpeg_passes(check: Check, folder: Path) -> None:
    """JPEG content under .jpeg (or .jpg) is fine."""
    save_image(folder / "images" / "d1.jpeg", SIZES["desktop"], "JPEG")
    listing = clean_listing()
    listing["screenshots"]["desktop"] = ["images/d1.jpeg"]
    assert check(listing) == []


def test_non_square_logo_is_a_square_finding(check: Check, folder: Path) -> None:
    """A non-square logo is reported as such, not also as a wrong size."""
    save_image(folder / "images" / "logo.png", (750, 700))
    assert check(clean_listing()) == [("image.square", "logo")]


@pytest.mark.parametrize(
    ("file", "size", "field"),
    [
        ("logo.png", (800, 800), "logo"),
        ("m3.png", (1242, 2000), "screenshots.mobile[2]"),
        ("d1.png", (1920, 1080), "screenshots.desktop[0]"),
    ],
)
def test_wrong_pixel_size_is_a_finding(
    check: Check, folder: Path, file: str, size: tuple[int, int], field: str
) -> None:
    """Pixel sizes are exact."""
    save_image(folder / "images" / file, size)
    assert check(clean_listing()) == [("image.dimensions", field)]


def test_oversized_logo_is_a_bytes_finding(check: Check, folder: Path) -> None:
    """Noise does not compress, so a 750×750 noise PNG exceeds the 1 MB logo limit."""
    path = folder / "images" / "logo.png"
    Image.frombytes("RGB", SIZES["logo"], os.urandom(750 * 750 * 3)).save(path)
    assert path.stat().st_size > MIB
    assert check(clean_listing()) == [("image.bytes", "logo")]


@pytest.mark.parametrize(
    ("kind", "count"), [("mobile", 4), ("mobile", 6), ("desktop", 0), ("desktop", 6)]
)
def test_screenshot_count_is_a_finding(check: Check, kind: str, count: int) -> None:
    """Exactly five phone screenshots; one to five desktop ones."""
    listing = clean_listing()
    shot = listing["screenshots"][kind][0]
    listing["screenshots"][kind] = [shot] * count
    assert check(listing) == [("screenshots.count", f"screenshots.{kind}")]


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("https://app.example.com", "domain.scheme"),
        ("http://app.example.com", "domain.scheme"),
        ("app.example.com/wecom", "domain.path"),
        ("app.example.com:8443", "domain.port"),
        ("203.0.113.10", "domain.ip"),
        ("app_example.com", "domain.label"),
        ("-app.example.com", "domain.label"),
        ("localhost", "domain.label"),
        ("xn--zz.example.com", "domain.label"),
    ],
)
@pytest.mark.parametrize("field", ["trusted_domain", "install_callback_domain"])
def test_domain_syntax_is_a_finding(check: Check, field: str, value: str, rule: str) -> None:
    """Domains are bare host names: no scheme, path, port or IP; valid labels."""
    listing = clean_listing()
    listing[field] = value
    assert check(listing) == [(rule, field)]


@pytest.mark.parametrize("value", ["例子.中国", "xn--fsqu00a.xn--fiqs8s", "App.Example.COM"])
def test_international_domains_pass(check: Check, value: str) -> None:
    """IDNA names pass in Unicode and in punycode form."""
    listing = clean_listing()
    listing["trusted_domain"] = value
    assert check(listing) == []


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("home_url", "app.example.com", "url.syntax"),
        ("business_settings_url", "https://", "url.syntax"),
        ("business_settings_url", "http://app.example.com/admin", "url.https"),
        ("data_callback_url", "http://app.example.com/wecom/data", "url.https"),
        ("command_callback_url", "http://app.example.com/wecom/command", "url.https"),
    ],
)
def test_url_rules_are_findings(check: Check, field: str, value: str, rule: str) -> None:
    """Callback and business-setting URLs need https; every URL must be absolute."""
    listing = clean_listing()
    listing[field] = value
    assert check(listing) == [(rule, field)]


def test_http_home_url_passes(check: Check) -> None:
    """WeCom asks for https only on the business-setting and callback URLs."""
    listing = clean_listing()
    listing["home_url"] = "http://app.example.com/"
    assert check(listing) == []


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("1.2.3", "ip.invalid"),
        ("10.0.0.8", "ip.not_public"),
        ("127.0.0.1", "ip.not_public"),
        ("203.0.113.10", "ip.not_public"),
        ("fe80::1", "ip.not_public"),
    ],
)
def test_ip_allowlist_rules_are_findings(check: Check, value: str, rule: str) -> None:
    """Allow-list entries are public IP addresses; the index names the entry."""
    listing = clean_listing()
    listing["ip_allowlist"] = ["119.29.29.29", value]
    assert check(listing) == [(rule, "ip_allowlist[1]")]


def test_findings_are_errors_unless_marked() -> None:
    """A finding's severity defaults to error; only errors count towards failing the check."""
    error = Finding("url.https", "home_url")
    warning = Finding("business_settings.credentials", "business_settings_url", severity="warning")
    assert error.severity == "error"
    assert errors([error, warning]) == [error]


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("https://app.example.com/admin", False, [("business_settings_url", "warning")]),
        ("https://app.example.com/admin", True, []),
        ("", False, []),
        (["https://app.example.com/admin"], False, []),
        (None, False, []),
    ],
)
def test_provider_credentials_warning(url: object, configured: bool, expected: object) -> None:
    """Only a business-settings URL without the provider credentials is warned about."""
    listing = clean_listing()
    if url is None:
        del listing["business_settings_url"]
    else:
        listing["business_settings_url"] = url
    findings = check_provider_credentials(listing, configured)
    assert [(finding.field, finding.severity) for finding in findings] == expected
    assert all(finding.rule == "business_settings.credentials" for finding in findings)
