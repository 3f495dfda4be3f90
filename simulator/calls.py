"""What an API handler of the simulator is: a path, a method, a token kind and an operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

JsonObject = dict[str, Any]
TokenParam = Literal["suite_access_token", "provider_access_token", "access_token"]


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One parsed API request: its query string and JSON body (empty for GET)."""

    query: dict[str, str]
    body: JsonObject


Operation = Callable[[ApiCall], Awaitable[JsonObject]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One WeCom API path; the token named by ``token`` must be in the query string."""

    path: str
    method: Literal["GET", "POST"]
    token: TokenParam | None
    operation: Operation
