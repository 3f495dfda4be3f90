"""The rule table: every rule id, its limits and its source, the banned words, the key schema.

Sources are sections of ``shared/docs/wecom-protocol.md`` (its §13 quotes WeCom's
developer-centre page WW-95672); "ours" marks a reading of ours where WeCom is silent.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import get_origin

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class Rule:
    """One checkable rule: its stable id, what it checks and where the rule comes from."""

    id: str
    checks: str
    source: str


_RULES = (
    Rule("key.unknown", "no key outside the listing schema (a typo must not skip a check)", "ours"),
    Rule("key.missing", "every required key is present", "§13.1, §13.2"),
    Rule("key.type", "each value has its type (text, list of text, mapping)", "ours"),
    Rule("text.length", "name 2–10, slogan 2–10, introduction 4–120 characters", "§13.1"),
    Rule("text.special_chars", "the name has letters, digits and spaces only", "§13.1"),
    Rule("text.banned_word", "no banned word in name, slogan or menus", "§13.1"),
    Rule("file.missing", "logo, screenshots and privacy policy files exist", "§13.1"),
    Rule("image.corrupt", "the image decodes completely", "§13.1"),
    Rule("image.format", "the image content is JPEG or PNG", "§13.1"),
    Rule("image.extension", "the file name extension matches the content", "§13.1, ours"),
    Rule("image.square", "the logo is square", "§13.1"),
    Rule("image.dimensions", "logo 750×750, phone 1242×2208, desktop 1080×832 px", "§13.1"),
    Rule("image.bytes", "logo ≤ 1 MB, each screenshot ≤ 2 MB", "§13.1"),
    Rule("screenshots.count", "exactly 5 phone screenshots, 1–5 desktop ones", "§13.1, ours"),
    Rule("domain.scheme", "domains are given without http:// or https://", "§13.2"),
    Rule("domain.path", "domains carry no path, query or fragment", "§13.2"),
    Rule("domain.port", "domains carry no port", "§13.2 (80001 notes)"),
    Rule("domain.ip", "domains are host names, not IP addresses", "§13.2 (80001 notes)"),
    Rule("domain.label", "valid DNS labels (IDNA/punycode), at least two", "§13.2, RFC 1035/5890"),
    Rule("url.syntax", "URLs are absolute http(s) URLs with a host", "§13.2"),
    Rule("url.https", "business-setting and both callback URLs use https://", "§13.2"),
    Rule("ip.invalid", "allow-list entries are IPv4 or IPv6 addresses", "§13.2"),
    Rule("ip.not_public", "allow-list addresses are public (not private, loopback…)", "§13.2"),
    Rule("callback.verification", "with --online: both callback URLs answer the echo", "§2.5"),
    # A warning: the listing is fine, the environment the page will run in is not (yet).
    Rule(
        "business_settings.credentials",
        "with a business-settings URL, the provider credentials its page signs admins in with",
        "§8.10, §13.2",
    ),
)

RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}

# Examples quoted by WeCom (§13.1), plus the English names of 微信/企业微信 (ours). Matching
# goes through `normalise_for_matching`, so list each word once, in any case or width.
BANNED_WORDS: tuple[str, ...] = (
    "微信",
    "企业微信",
    "企微",
    "特卖",
    "抽奖",
    "免费",
    "永久免费",
    "热门",
    "第一",
    "WeChat",
    "WeCom",
)


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """Exact pixel size and the byte limit of one kind of image."""

    width: int
    height: int
    max_bytes: int


# "1 MB" and "2 MB" read as MiB: the smaller decimal reading would reject files WeCom takes,
# and both readings agree on every image a phone or a designer tool exports at these sizes.
MIB = 1024 * 1024
IMAGE_SPECS: dict[str, ImageSpec] = {
    "logo": ImageSpec(750, 750, 1 * MIB),
    "screenshots.mobile": ImageSpec(1242, 2208, 2 * MIB),
    "screenshots.desktop": ImageSpec(1080, 832, 2 * MIB),
}
# Image formats WeCom takes (by content) and the file name extensions that go with each.
IMAGE_FORMATS: dict[str, tuple[str, ...]] = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",)}

# (min, max) characters; max None means unbounded. The category only has to be chosen.
TEXT_LIMITS: dict[str, tuple[int, int | None]] = {
    "name": (2, 10),
    "slogan": (2, 10),
    "introduction": (4, 120),
    "category": (1, None),
}
# WeCom asks for five phone screenshots and recommends five desktop ones (§13.1).
SCREENSHOT_COUNTS: dict[str, tuple[int, int]] = {"mobile": (5, 5), "desktop": (1, 5)}


class _Strict(BaseModel):
    """No unknown keys, and no coercion: a YAML number or date where text belongs is wrong."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Screenshots(_Strict):
    """The ``screenshots`` mapping: file paths, relative to the listing."""

    mobile: list[str]
    desktop: list[str]


class ListingFile(_Strict):
    """The keys and value types of a listing file; its rules are checked afterwards."""

    name: str
    slogan: str
    introduction: str
    category: str
    logo: str
    screenshots: Screenshots
    privacy_policy: str
    home_url: str
    trusted_domain: str
    install_callback_domain: str
    business_settings_url: str
    data_callback_url: str
    command_callback_url: str
    menus: list[str] = Field(default_factory=list)
    ip_allowlist: list[str] = Field(default_factory=list)


def _keys(model: type[BaseModel], prefix: str = "") -> dict[str, tuple[str, bool]]:
    """Dotted key -> (kind of value, required), in the order of the model's fields."""
    keys: dict[str, tuple[str, bool]] = {}
    for name, info in model.model_fields.items():
        annotation, required = info.annotation, info.is_required()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys[prefix + name] = ("mapping", required)
            keys.update(_keys(annotation, f"{prefix}{name}."))
        else:
            keys[prefix + name] = ("list" if get_origin(annotation) is list else "text", required)
    return keys


# key -> kind of value ("text", "list" of text, "mapping"); nested keys are dotted. Derived
# from ListingFile so the template test and the findings name the same keys.
LISTING_KEYS: dict[str, str] = {key: kind for key, (kind, _) in _keys(ListingFile).items()}
OPTIONAL_KEYS = frozenset(key for key, (_, required) in _keys(ListingFile).items() if not required)
DOMAIN_FIELDS = ("trusted_domain", "install_callback_domain")
HTTPS_URL_FIELDS = ("business_settings_url", "data_callback_url", "command_callback_url")
URL_FIELDS = ("home_url", *HTTPS_URL_FIELDS)
CALLBACK_URL_FIELDS = ("data_callback_url", "command_callback_url")


def count_characters(text: str) -> int:
    """Characters as WeCom's web form counts them: one per Chinese character.

    Browser ``maxlength`` counts UTF-16 code units, so we do too (ours): identical for
    Chinese and Latin text, and stricter, never laxer, for emoji outside the BMP.
    """
    normalised = unicodedata.normalize("NFC", text.strip())
    return len(normalised.encode("utf-16-le")) // 2


def normalise_for_matching(text: str) -> str:
    """Fold width, case, spaces and invisible format characters before searching.

    NFKC turns full-width letters into ASCII; casefold makes ``WECHAT`` match ``wechat``;
    dropping spaces and zero-width (category Cf) characters stops ``微 信`` sneaking past.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        char for char in folded if not char.isspace() and unicodedata.category(char) != "Cf"
    )


def find_banned_words(text: str) -> list[str]:
    """The banned words in ``text``, leaving out any that only occur inside a longer match."""
    haystack = normalise_for_matching(text)
    found = [word for word in BANNED_WORDS if normalise_for_matching(word) in haystack]
    return [
        word
        for word in found
        if not any(
            word != other and normalise_for_matching(word) in normalise_for_matching(other)
            for other in found
        )
    ]
