"""The finding: one broken rule at one field, with the values its message needs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule broken at ``field`` (a key path such as ``screenshots.mobile[2]``).

    ``detail`` picks a message variant when one rule can fail in several ways (the online
    verification); ``params`` fill the message, so findings stay free of any language.
    """

    rule: str
    field: str
    params: Mapping[str, str | int] = dataclasses.field(default_factory=dict)
    detail: str = ""

    @property
    def message_key(self) -> str:
        """The key of this finding's message in the report's message table."""
        return f"{self.rule}.{self.detail}" if self.detail else self.rule
