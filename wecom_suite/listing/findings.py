"""The finding: one broken rule at one field, with the values its message needs, and how
much it matters (an error fails the check, a warning does not)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule broken at ``field`` (a key path such as ``screenshots.mobile[2]``).

    ``detail`` picks a message variant when one rule can fail in several ways (the online
    verification); ``params`` fill the message, so findings stay free of any language.
    A ``warning`` is reported but does not fail the check (exit code, ``"ok"``).
    """

    rule: str
    field: str
    params: Mapping[str, str | int] = dataclasses.field(default_factory=dict)
    detail: str = ""
    severity: Severity = "error"

    @property
    def message_key(self) -> str:
        """The key of this finding's message in the report's message table."""
        return f"{self.rule}.{self.detail}" if self.detail else self.rule


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that fail the check: the one test behind the exit code and ``"ok"``."""
    return [finding for finding in findings if finding.severity == "error"]
