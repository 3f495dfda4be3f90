"""What members send reaches the event exactly, and what we build as WeCom survives the parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.wecom import xml as xml_module
from shared.wecom.crypto import CallbackCipher
from shared.wecom.errors import XmlError
from shared.wecom.events import normalize_callback
from shared.wecom.sealing import seal_callback
from shared.wecom.xml import cdata, parse_envelope, parse_xml
from simulator.callback_xml import Field, data_xml, xml_body

RECEIVED_AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def _text_message(content_xml: str, *, pretty: bool = False) -> bytes:
    sep = "\n  " if pretty else ""
    return (
        f"<xml>{sep}<ToUserName><![CDATA[wwcorp1]]></ToUserName>"
        f"{sep}<FromUserName><![CDATA[zhangsan]]></FromUserName>"
        f"{sep}<CreateTime>1718005000</CreateTime>{sep}<MsgType><![CDATA[text]]></MsgType>"
        f"{sep}<Content>{content_xml}</Content>{sep}<MsgId>7389152483952369321</MsgId>"
        f"{sep}<AgentID>1000002</AgentID>{sep[:1]}</xml>"
    ).encode()


MESSAGES = [
    (
        "code snippet",
        "<![CDATA[def f(x):\n    return x  # <b>&amp;\n\n]]>",
        "def f(x):\n    return x  # <b>&amp;\n\n",
    ),
    (
        "indented code",
        "<![CDATA[\n\tif (a < b) {\n\t\treturn;\n\t}\n]]>",
        "\n\tif (a < b) {\n\t\treturn;\n\t}\n",
    ),
    ("whitespace only", "<![CDATA[ \n\t  ]]>", " \n\t  "),
    ("one space", "<![CDATA[ ]]>", " "),
    ("ideographic spaces", "<![CDATA[\u3000你好\u3000]]>", "\u3000你好\u3000"),
    ("indented section", "\n    <![CDATA[  keep me  ]]>\n  ", "  keep me  "),
    ("split at ]]>", "<![CDATA[a]]]]><![CDATA[>b]]>", "a]]>b"),
    ("mixed CDATA and text", "a &amp; <![CDATA[<b> ]]> c", "a & <b>  c"),
    ("text with references", " x&#x20;&lt;y&gt; ", " x <y> "),
]


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
@pytest.mark.parametrize(
    ("content_xml", "expected"),
    [(xml, expected) for _, xml, expected in MESSAGES],
    ids=[name for name, _, _ in MESSAGES],
)
def test_a_members_message_reaches_payload_and_raw_exactly(
    content_xml: str, expected: str, pretty: bool
) -> None:
    """docs/events.md: the text inside CDATA reaches payload and raw byte for byte."""
    raw = parse_xml(_text_message(content_xml, pretty=pretty))
    event = normalize_callback("data", raw, received_at=RECEIVED_AT)
    assert event.payload["content"] == expected
    assert event.raw["Content"] == expected


def test_numbers_keep_their_text_in_raw_and_are_trimmed_where_they_become_numbers() -> None:
    """A pretty-printed number is still its number in payload and occurred_at; raw is as sent."""
    body = (
        b"<xml><ToUserName><![CDATA[wwcorp1]]></ToUserName>"
        b"<FromUserName><![CDATA[zhangsan]]></FromUserName>"
        b"<CreateTime>\n    1718005000\n  </CreateTime><MsgType><![CDATA[event]]></MsgType>"
        b"<Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey>"
        b"<AgentID> 1000002 </AgentID></xml>"
    )
    event = normalize_callback("data", parse_xml(body), received_at=RECEIVED_AT)
    assert event.occurred_at == datetime.fromtimestamp(1718005000, UTC)
    assert event.payload["agent_id"] == 1000002
    assert event.raw["CreateTime"] == "\n    1718005000\n  "
    assert event.raw["AgentID"] == " 1000002 "


def test_cdata_escapes_nothing_and_splits_the_one_sequence_it_cannot_hold() -> None:
    """The one way we write text as CDATA: verbatim, with "]]>" split over two sections."""
    assert cdata("a&b<c") == "<![CDATA[a&b<c]]>"
    assert cdata("x]]>y") == "<![CDATA[x]]]]><![CDATA[>y]]>"
    assert cdata("") == "<![CDATA[]]>"


_VALUE = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\ufffe\uffff")
    | st.sampled_from(list("\t\n ]>&<")),
    max_size=30,
)


@given(_VALUE)
def test_any_text_written_with_cdata_is_read_back_exactly(text: str) -> None:
    """Whatever a member may send (CR aside, which XML turns into LF) survives cdata()."""
    assert parse_xml(f"<xml><A>{cdata(text)}</A></xml>".encode()) == {"A": text}


@pytest.mark.parametrize(
    ("to_user_name", "agent_id"), [("a&b<c", "x]]>y"), ("ww1", "1000002"), ("", "")]
)
def test_sealed_envelope_values_round_trip(to_user_name: str, agent_id: str) -> None:
    """seal_callback no longer XML-escapes inside CDATA: parse_envelope gives back the values."""
    sealed = seal_callback(
        CallbackCipher(KEY),
        "token",
        b"<xml/>",
        "",
        timestamp=1_700_000_000,
        to_user_name=to_user_name,
        agent_id=agent_id,
    )
    outer = parse_envelope(sealed.body)
    assert (outer["ToUserName"], outer["AgentID"]) == (to_user_name, agent_id)
    assert outer["Encrypt"]


def test_the_simulator_writes_any_string_field_exactly() -> None:
    """simulator/callback_xml.py builds callbacks that parse back to what it was given."""
    fields: list[Field] = [
        ("Content", "x]]>y a&b<c\n  code\n"),
        ("Blank", " "),
        ("AgentID", 1000002),
    ]
    assert parse_xml(xml_body(fields)) == {
        "Content": "x]]>y a&b<c\n  code\n",
        "Blank": " ",
        "AgentID": "1000002",
    }
    body = data_xml("wwcorp1", "zhangsan", 1718005000, "text", ("Content", "  hi  "))
    assert parse_xml(body)["Content"] == "  hi  "


ENVELOPE = b"<ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt>"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<xml>" + b"<!--" + b"x" * 60_000 + b"-->" + ENVELOPE + b"</xml>", "comments"),
        (b"<xml>" + b"<!-- a --><!-- b -->" * 3_000 + ENVELOPE + b"</xml>", "comments"),
        (b'<?xml version="1.0"?><!-- x --><xml>' + ENVELOPE + b"</xml>", "comments"),
        (b"<xml>" + ENVELOPE + b"</xml><!-- trailing -->", "comments"),
        (b"<xml><?pi " + b"x" * 60_000 + b"?>" + ENVELOPE + b"</xml>", "processing instr"),
        (b'<?xml-stylesheet href="a"?><xml>' + ENVELOPE + b"</xml>", "processing instr"),
        (b'<?xml version="1.0"?><?xml version="1.0"?><xml>' + ENVELOPE + b"</xml>", "processing"),
        (b"<xml><Encrypt><![CDATA[a<!--b]]></Encrypt></xml>", "comments"),
        (b"<!DOCTYPE xml><xml>" + ENVELOPE + b"</xml>", "a DTD is not allowed"),
    ],
    ids=[
        "60 KB comment",
        "comment flood",
        "after declaration",
        "after root",
        "60 KB PI",
        "stylesheet PI",
        "second declaration",
        "inside CDATA",
        "DTD",
    ],
)
def test_an_envelope_with_comments_or_processing_instructions_is_refused(
    body: bytes, reason: str
) -> None:
    """The outer envelope is unauthenticated: markup no envelope has is refused before any
    parse, with the XmlError the gateway answers 400 to."""
    with pytest.raises(XmlError, match=reason) as caught:
        parse_envelope(body)
    assert caught.value.status == 400


def test_a_refused_envelope_never_reaches_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before any costly parse: a flood costs a byte scan, not a parse (which costs
    several times a plain body of its size)."""

    def no_parsing(*args: object, **kwargs: object) -> dict[str, object]:
        raise AssertionError("the parser was reached")

    monkeypatch.setattr(xml_module, "parse_xml", no_parsing)
    monkeypatch.setattr(xml_module, "_parse_streaming", no_parsing)
    with pytest.raises(XmlError, match="comments"):
        parse_envelope(b"<xml>" + b"<!--" + b"x" * 60_000 + b"-->" + ENVELOPE + b"</xml>")
    with pytest.raises(XmlError, match="processing instructions"):
        parse_envelope(b"<xml><?pi " + b"x" * 60_000 + b"?>" + ENVELOPE + b"</xml>")


@pytest.mark.parametrize(
    "body",
    [
        b"<xml>" + ENVELOPE + b"</xml>",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<xml>' + ENVELOPE + b"</xml>\n",
        b"<xml>\n  " + ENVELOPE.replace(b"><E", b">\n  <E") + b"\n</xml>\n",
        b"\xef\xbb\xbf<?xml version='1.0'?><xml>" + ENVELOPE + b"</xml>",
        b"<xml><ToUserName>ww1</ToUserName><Encrypt>abc=</Encrypt></xml>",
    ],
    ids=["WeCom's shape", "declaration", "pretty-printed", "BOM", "plain text"],
)
def test_legitimate_envelope_shapes_still_parse(body: bytes) -> None:
    """A declaration, indentation, a BOM or plain text are still accepted."""
    assert parse_envelope(body) == {"ToUserName": "ww1", "Encrypt": "abc="}
