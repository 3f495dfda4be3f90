"""Small types every part of the simulator's state shares: the clock, issued values, errors."""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time`` in production)."""


class WeComError(Exception):
    """A refusal WeCom would answer with ``errcode``/``errmsg`` (HTTP 200)."""

    def __init__(self, errcode: int, errmsg: str, **fields: Any) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        # Some refusals carry data besides the code, e.g. message/send's 81013 still lists
        # the invalid recipients.
        self.fields = fields


@dataclass(frozen=True, slots=True)
class Issued:
    """A credential the simulator handed out and the moment it stops being valid."""

    value: str
    expires_at: float


def same(given: object, expected: str | None) -> bool:
    """Whether a caller's value equals a secret we hold, in constant time."""
    return (
        isinstance(given, str)
        and expected is not None
        and hmac.compare_digest(given.encode(), expected.encode())
    )


def expires_in(seconds: float) -> int:
    """WeCom's ``expires_in`` for a lifetime: whole seconds as a JSON integer, never 0.

    Lifetimes are floats so tests can configure short ones; WeCom always answers an integer
    (e.g. ``7200``), and a client may read ``7200.0`` differently. Rounding up keeps a
    sub-second test lifetime positive.
    """
    return max(1, math.ceil(seconds))
