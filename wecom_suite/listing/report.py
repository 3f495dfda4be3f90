"""Renders findings as text lines or JSON, in Chinese or English."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Literal

from wecom_suite.listing.findings import Finding, errors
from wecom_suite.listing.messages import EN, SUMMARY, TYPE_NAMES, ZH
from wecom_suite.listing.online import Verification

Lang = Literal["zh", "en"]
_MESSAGES = {"en": EN, "zh": ZH}


def default_lang(environ: Mapping[str, str]) -> Lang:
    """zh when the locale is Chinese, else en; LC_ALL wins over LC_MESSAGES over LANG (POSIX)."""
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(variable, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def describe(finding: Finding, lang: Lang) -> tuple[str, str]:
    """What is wrong and what is expected, for one finding."""
    message, expected = _MESSAGES[lang][finding.message_key]
    params = dict(finding.params)
    if finding.rule == "key.type":
        params["type"] = TYPE_NAMES[lang][str(params["type"])]
    return message.format(**params), expected.format(**params)


def summary(key: str, lang: Lang, **params: object) -> str:
    """One line of the fixed wording (summary, errors), filled with ``params``."""
    return SUMMARY[lang][key].format(**params)


def format_text(
    findings: Sequence[Finding], verifications: Sequence[Verification], lang: Lang, path: str
) -> str:
    """One line per finding (rule id, field, what is wrong, what is expected), then a summary.

    A warning's line starts with the word for warning (``警告：`` in Chinese), and the summary
    counts warnings apart from problems; an error's line is unmarked, as it always was.
    """
    separator, colon = ("；", "：") if lang == "zh" else ("; ", ": ")
    expected_word = summary("expected", lang)
    warning_mark = f"{summary('warning', lang)}{colon}"
    lines = []
    for finding in findings:
        message, expected = describe(finding, lang)
        mark = warning_mark if finding.severity == "warning" else ""
        lines.append(
            f"{mark}{finding.rule}  {finding.field}{colon}{message}{separator}"
            f"{expected_word}{colon}{expected}"
        )
    lines.extend(
        summary("verified", lang, field=item.field, url=item.url)
        for item in verifications
        if item.ok
    )
    count = len(errors(findings))
    warnings = len(findings) - count
    key = "findings" if count else "clean"
    if warnings:
        lines.append(
            summary(f"{key}_with_warnings", lang, path=path, count=count, warnings=warnings)
        )
    else:
        lines.append(summary(key, lang, path=path, count=count))
    return "\n".join(lines)


def format_json(
    findings: Sequence[Finding], verifications: Sequence[Verification], lang: Lang
) -> str:
    """``{"ok", "findings": [{"rule", "field", "message", "expected"}]}``, plus the online
    outcomes under ``verifications`` when ``--online`` ran.

    A warning carries ``"severity": "warning"`` and leaves ``ok`` true; an error carries no
    ``severity`` key (it means ``"error"``), so an error-only report reads as it always did.
    """
    items = []
    for finding in findings:
        message, expected = describe(finding, lang)
        item = {
            "rule": finding.rule,
            "field": finding.field,
            "message": message,
            "expected": expected,
        }
        if finding.severity != "error":
            item["severity"] = finding.severity
        items.append(item)
    document: dict[str, object] = {"ok": not errors(findings), "findings": items}
    if verifications:
        document["verifications"] = [
            {"field": item.field, "url": item.url, "ok": item.ok} for item in verifications
        ]
    return json.dumps(document, ensure_ascii=False, indent=2)


def format_error(reason: str, lang: Lang, path: str, fmt: str) -> str:
    """The output for a listing file that cannot be read or parsed."""
    line = summary("unreadable", lang, path=path, reason=reason)
    if fmt == "json":
        return json.dumps({"ok": False, "error": line, "findings": []}, ensure_ascii=False)
    return line
