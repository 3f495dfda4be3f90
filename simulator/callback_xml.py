"""Decrypted bodies of the callbacks the simulator pushes (protocol doc §5, §6).

Strings go in CDATA and numbers bare, as in WeCom's samples.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.wecom.xml import cdata

Field = tuple[str, str | int | float | None]


def xml_body(fields: Sequence[Field]) -> bytes:
    """``<xml>`` with one element per field, in order; ``None`` fields are left out."""
    parts = []
    for name, value in fields:
        if value is None:
            continue
        if isinstance(value, int | float):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}>{cdata(value)}</{name}>")
    return f"<xml>{''.join(parts)}</xml>".encode()


def instruction_xml(suite_id: str, info_type: str, timestamp: int, *extra: Field) -> bytes:
    """An instruction callback: ``SuiteId``, ``InfoType``, ``TimeStamp`` and its own fields."""
    return xml_body(
        [("SuiteId", suite_id), ("InfoType", info_type), ("TimeStamp", timestamp), *extra]
    )


def data_xml(corp_id: str, user_id: str, created: int, msg_type: str, *extra: Field) -> bytes:
    """A data callback (§6): the fields every one shares, then ``AgentID`` and its own."""
    return xml_body(
        [
            ("ToUserName", corp_id),
            ("FromUserName", user_id),
            ("CreateTime", created),
            ("MsgType", msg_type),
            *extra,
        ]
    )
