"""The ``listing check`` and ``listing init`` commands: read, check, report, exit code.

Exit codes: 0 when the listing is clean or has only warnings, 1 when any rule fails with
an error, 2 when the listing file cannot be read or parsed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import yaml

from shared.settings import WeComAppSettings, load_settings
from wecom_suite.listing.checks import check_listing, check_provider_credentials
from wecom_suite.listing.domains import url_problem
from wecom_suite.listing.findings import Finding, errors
from wecom_suite.listing.online import Verification, verify_callback_urls
from wecom_suite.listing.report import Lang, format_error, format_json, format_text, summary
from wecom_suite.listing.rules import CALLBACK_URL_FIELDS
from wecom_suite.listing.template import TEMPLATE

EXIT_CLEAN, EXIT_FINDINGS, EXIT_UNREADABLE = 0, 1, 2


class UnreadableListing(Exception):
    """The listing file cannot be read, or is not a YAML/JSON mapping."""


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    """The parser's problem and where it is, without its echo of the source text."""
    problem = error.problem or error.context or "malformed YAML"
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return problem
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def load_listing(path: Path) -> dict[str, object]:
    """The parsed listing; JSON by the ``.json`` extension, YAML otherwise."""
    try:
        # utf-8-sig: editors on Windows like to start UTF-8 files with a BOM.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableListing(str(exc)) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise UnreadableListing(_describe_yaml_error(exc)) from exc
    except (yaml.YAMLError, ValueError) as exc:
        # json's message already names the line and column.
        raise UnreadableListing(" ".join(str(exc).split())) from exc
    if not isinstance(data, dict):
        raise UnreadableListing("the top level is not a mapping of keys to values")
    return {str(key): value for key, value in data.items()}


def _verify_online(listing: dict[str, object], ca_file: Path | None) -> list[Verification]:
    """URL verification of the callback URLs that are at least well-formed URLs."""
    urls = {
        field: value
        for field in CALLBACK_URL_FIELDS
        if isinstance(value := listing.get(field), str)
        and url_problem(value, require_https=False) is None
    }
    if not urls:
        return []
    settings = load_settings(WeComAppSettings)
    return asyncio.run(
        verify_callback_urls(
            urls,
            settings.callback_token.get_secret_value(),
            settings.encoding_aes_key.get_secret_value(),
            ca_file=ca_file,
        )
    )


def _provider_configured() -> bool:
    """Whether this environment has the provider credentials, as the gateway would see them.

    The same settings the gateway's token source reads (sandbox values in sandbox mode), so
    the warning fires exactly when the business-settings page would say they are missing.
    """
    settings = load_settings(WeComAppSettings)
    return settings.provider_corpid is not None and settings.provider_secret is not None


def run_check(
    path: Path, *, online: bool, lang: Lang, fmt: str, ca_file: Path | None = None
) -> int:
    """Check the listing at ``path``, print the report and return the exit code."""
    try:
        listing = load_listing(path)
    except UnreadableListing as exc:
        stream = sys.stdout if fmt == "json" else sys.stderr
        print(format_error(str(exc), lang, str(path), fmt), file=stream)
        return EXIT_UNREADABLE
    findings: list[Finding] = check_listing(listing, path.parent)
    # Settings are read only when they matter: a broken environment (exit 2) must not stop
    # the check of a listing that has no business-settings URL to warn about.
    if isinstance(listing.get("business_settings_url"), str):
        findings.extend(check_provider_credentials(listing, _provider_configured()))
    verifications = _verify_online(listing, ca_file) if online else []
    findings.extend(item.finding for item in verifications if item.finding is not None)
    if fmt == "json":
        print(format_json(findings, verifications, lang))
    else:
        print(format_text(findings, verifications, lang, str(path)))
    return EXIT_FINDINGS if errors(findings) else EXIT_CLEAN


def run_init(path: Path, *, lang: Lang) -> int:
    """Write the commented template to ``path``; never overwrite an existing file."""
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(TEMPLATE)
    except FileExistsError:
        print(summary("exists", lang, path=path), file=sys.stderr)
        return EXIT_FINDINGS
    except OSError as exc:
        print(summary("unreadable", lang, path=path, reason=exc.strerror), file=sys.stderr)
        return EXIT_UNREADABLE
    print(summary("written", lang, path=path))
    return EXIT_CLEAN
