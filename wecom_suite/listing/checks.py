"""Applies the rule table to a parsed listing: a listing mapping and its folder in, findings out.

The only I/O is reading the files the listing names (images, privacy policy); nothing here
prints, exits or talks to the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from wecom_suite.listing.domains import domain_problem, ip_problem, url_problem
from wecom_suite.listing.findings import Finding
from wecom_suite.listing.images import check_image
from wecom_suite.listing.rules import (
    DOMAIN_FIELDS,
    HTTPS_URL_FIELDS,
    IMAGE_SPECS,
    LISTING_KEYS,
    SCREENSHOT_COUNTS,
    TEXT_LIMITS,
    URL_FIELDS,
    ListingFile,
    count_characters,
    find_banned_words,
)

_MISSING = object()


def _lookup(listing: Mapping[str, object], key: str) -> object:
    """The value at dotted ``key``, or ``_MISSING`` when it or a parent mapping is absent."""
    value: object = listing
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _finding(error: ErrorDetails) -> Finding:
    """The key.* finding for one pydantic error; its loc is the path of keys and indices."""
    loc = error["loc"]
    if error["type"] in {"extra_forbidden", "invalid_key"}:
        # invalid_key: a mapping key that is not text (YAML's ``1: x``); loc holds it as is.
        return Finding("key.unknown", ".".join(str(part) for part in loc))
    key = ".".join(str(part) for part in loc if isinstance(part, str))
    indices = "".join(f"[{part}]" for part in loc if isinstance(part, int))
    if error["type"] == "missing":
        return Finding("key.missing", key)
    # Any other error is a value of the wrong type; list entries are text.
    return Finding("key.type", key + indices, {"type": "text" if indices else LISTING_KEYS[key]})


def _places(listing: Mapping[str, object]) -> dict[str, int]:
    """Each dotted key path -> its place in the file, a mapping's keys right after it."""
    paths: list[str] = []
    for key, value in listing.items():
        paths.append(str(key))
        if isinstance(value, Mapping):
            paths.extend(f"{key}.{sub}" for sub in value)
    return {path: place for place, path in enumerate(paths)}


_SCHEMA_PLACES = {key: place for place, key in enumerate(LISTING_KEYS)}


def check_structure(listing: Mapping[str, object]) -> tuple[list[Finding], dict[str, object]]:
    """Unknown, missing and mistyped keys, and the well-typed values that remain to check.

    A missing or mistyped mapping has its own finding and none for its keys; a list entry
    of the wrong type is reported and skipped, the rest of the list is still checked.
    """
    try:
        ListingFile.model_validate(dict(listing))
        errors: list[ErrorDetails] = []
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    places = _places(listing)
    # Unknown keys first, in file order; then the schema's order, as the report reads best.
    findings = sorted(
        (_finding(error) for error in errors),
        key=lambda f: (
            (0, places.get(f.field, 0))
            if f.rule == "key.unknown"
            else (1, _SCHEMA_PLACES[f.field.partition("[")[0]])
        ),
    )
    mistyped = {finding.field for finding in findings if finding.rule == "key.type"}
    valid: dict[str, object] = {}
    for key in LISTING_KEYS:
        value = _lookup(listing, key)
        if value is _MISSING or key in mistyped:
            continue
        valid[key] = (
            [item for item in value if isinstance(item, str)] if isinstance(value, list) else value
        )
    return findings, valid


def _check_texts(values: Mapping[str, object]) -> list[Finding]:
    findings: list[Finding] = []
    for key, (minimum, maximum) in TEXT_LIMITS.items():
        text = values.get(key)
        if not isinstance(text, str):
            continue
        count = count_characters(text)
        if count < minimum or (maximum is not None and count > maximum):
            params: dict[str, str | int] = {"count": count, "min": minimum}
            if maximum is None:
                findings.append(Finding("text.length", key, params, detail="at_least"))
            else:
                findings.append(Finding("text.length", key, {**params, "max": maximum}))
    name = values.get("name")
    if isinstance(name, str):
        # "No special characters" (§13.1): letters and digits of any script, and spaces.
        special = sorted({char for char in name.strip() if not (char.isalnum() or char == " ")})
        if special:
            findings.append(Finding("text.special_chars", "name", {"chars": " ".join(special)}))
    fields: list[tuple[str, object]] = [("name", name), ("slogan", values.get("slogan"))]
    menus = values.get("menus")
    if isinstance(menus, list):
        fields.extend((f"menus[{index}]", menu) for index, menu in enumerate(menus))
    for field, text in fields:
        words = find_banned_words(text) if isinstance(text, str) else []
        if words:
            findings.append(Finding("text.banned_word", field, {"words": "、".join(words)}))
    return findings


def _resolve(base_dir: Path, relative: str) -> Path:
    return (base_dir / relative).expanduser()


def _check_files(values: Mapping[str, object], base_dir: Path) -> list[Finding]:
    images: list[tuple[str, str, str]] = []  # (field path, file, spec key)
    logo = values.get("logo")
    if isinstance(logo, str):
        images.append(("logo", logo, "logo"))
    findings: list[Finding] = []
    for kind, (minimum, maximum) in SCREENSHOT_COUNTS.items():
        key = f"screenshots.{kind}"
        shots = values.get(key)
        if not isinstance(shots, list):
            continue
        if not minimum <= len(shots) <= maximum:
            params = {"count": len(shots), "min": minimum, "max": maximum}
            findings.append(Finding("screenshots.count", key, params))
        images.extend((f"{key}[{index}]", str(shot), key) for index, shot in enumerate(shots))
    for field, relative, spec_key in images:
        path = _resolve(base_dir, relative)
        if not path.is_file():
            findings.append(Finding("file.missing", field, {"path": relative}))
            continue
        findings.extend(check_image(path, field, IMAGE_SPECS[spec_key], square=spec_key == "logo"))
    policy = values.get("privacy_policy")
    if isinstance(policy, str) and not _resolve(base_dir, policy).is_file():
        findings.append(Finding("file.missing", "privacy_policy", {"path": policy}))
    return findings


def _check_addresses(values: Mapping[str, object]) -> list[Finding]:
    findings: list[Finding] = []
    for key in DOMAIN_FIELDS:
        value = values.get(key)
        problem = domain_problem(value) if isinstance(value, str) else None
        if problem:
            findings.append(Finding(problem, key, {"value": str(value)}))
    for key in URL_FIELDS:
        value = values.get(key)
        if isinstance(value, str):
            problem = url_problem(value, require_https=key in HTTPS_URL_FIELDS)
            if problem:
                findings.append(Finding(problem, key, {"value": value}))
    addresses = values.get("ip_allowlist")
    for index, address in enumerate(addresses if isinstance(addresses, list) else []):
        problem = ip_problem(str(address))
        if problem:
            findings.append(Finding(problem, f"ip_allowlist[{index}]", {"value": str(address)}))
    return findings


def check_provider_credentials(listing: Mapping[str, object], configured: bool) -> list[Finding]:
    """A warning when the listing names a business-settings URL and ``configured`` is false.

    The page behind that URL signs admins in through ``service/get_login_info``, which takes
    the provider token (§8.10); without the provider credentials it can only say so. The
    listing itself is fine, so this is a warning, not an error.
    """
    url = _lookup(listing, "business_settings_url")
    if configured or not isinstance(url, str) or not url.strip():
        return []
    return [
        Finding(
            "business_settings.credentials",
            "business_settings_url",
            {"value": url, "variables": "WECOM_PROVIDER_CORPID, WECOM_PROVIDER_SECRET"},
            severity="warning",
        )
    ]


def check_listing(listing: Mapping[str, object], base_dir: Path) -> list[Finding]:
    """Every finding for ``listing``, whose file paths are relative to ``base_dir``."""
    findings, values = check_structure(listing)
    findings.extend(_check_texts(values))
    findings.extend(_check_files(values, base_dir))
    findings.extend(_check_addresses(values))
    return findings
