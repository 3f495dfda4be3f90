"""What an API handler of the simulator is: a path, a method, a token kind and an operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

JsonObject = dict[str, Any]
TokenParam = Literal["suite_access_token", "provider_access_token", "access_token"]
BodyKind = Literal["json", "multipart"]


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One file part of a multipart body; ``size`` counts every byte sent."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One parsed API request: its query string and JSON body (empty for GET)."""

    query: dict[str, str]
    body: JsonObject
    files: dict[str, UploadedFile] = field(default_factory=dict)


Operation = Callable[[ApiCall], Awaitable[JsonObject]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One WeCom API path; the token named by ``token`` must be in the query string.

    ``ok_errmsg`` is the ``errmsg`` WeCom puts beside ``errcode`` 0 on success; ``None`` means
    a success carries neither (get_suite_token, get_corp_token: "因历史原因,该接口在调用失败时
    才返回errcode", their doc pages say).
    """

    path: str
    method: Literal["GET", "POST"]
    token: TokenParam | None
    operation: Operation
    body: BodyKind = "json"
    ok_errmsg: str | None = "ok"
