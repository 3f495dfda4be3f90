"""Applies the rule table to a parsed listing: a listing mapping and its folder in, findings out.

The only I/O is reading the files the listing names (images, privacy policy); nothing here
prints, exits or talks to the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from wecom_suite.listing.domains import domain_problem, ip_problem, url_problem
from wecom_suite.listing.findings import Finding
from wecom_suite.listing.images import check_image
from wecom_suite.listing.rules import (
    DOMAIN_FIELDS,
    HTTPS_URL_FIELDS,
    IMAGE_SPECS,
    LISTING_KEYS,
    OPTIONAL_KEYS,
    SCREENSHOT_COUNTS,
    TEXT_LIMITS,
    URL_FIELDS,
    count_characters,
    find_banned_words,
)

_TYPE_OK = {
    "text": lambda value: isinstance(value, str),
    "mapping": lambda value: isinstance(value, dict),
    "list": lambda value: isinstance(value, list),
}


def _flatten(listing: Mapping[str, object]) -> dict[str, object]:
    """Top-level keys plus the dotted keys one level down (``screenshots.mobile``)."""
    flat: dict[str, object] = {}
    for key, value in listing.items():
        flat[str(key)] = value
        if LISTING_KEYS.get(str(key)) == "mapping" and isinstance(value, dict):
            flat.update({f"{key}.{sub}": sub_value for sub, sub_value in value.items()})
    return flat


def check_structure(listing: Mapping[str, object]) -> tuple[list[Finding], dict[str, object]]:
    """Unknown, missing and mistyped keys, and the well-typed values that remain to check."""
    flat = _flatten(listing)
    findings = [Finding("key.unknown", key) for key in flat if key not in LISTING_KEYS]
    valid: dict[str, object] = {}
    for key, kind in LISTING_KEYS.items():
        parent = key.rpartition(".")[0]
        if key not in flat:
            # A missing or mistyped parent has its own finding; do not repeat it per child.
            if key not in OPTIONAL_KEYS and (not parent or parent in valid):
                findings.append(Finding("key.missing", key))
            continue
        value = flat[key]
        if not _TYPE_OK[kind](value):
            findings.append(Finding("key.type", key, {"type": kind}))
            continue
        if isinstance(value, list):
            # Each entry is text; a bad entry is reported and skipped, the rest still checked.
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    findings.append(Finding("key.type", f"{key}[{index}]", {"type": "text"}))
            value = [item for item in value if isinstance(item, str)]
        valid[key] = value
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


def check_listing(listing: Mapping[str, object], base_dir: Path) -> list[Finding]:
    """Every finding for ``listing``, whose file paths are relative to ``base_dir``."""
    findings, values = check_structure(listing)
    findings.extend(_check_texts(values))
    findings.extend(_check_files(values, base_dir))
    findings.extend(_check_addresses(values))
    return findings
