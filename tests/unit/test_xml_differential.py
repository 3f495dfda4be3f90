"""The regex fast path of shared/wecom/xml.py against the defusedxml reference, on generated XML.

Documents are built together with the value each leaf must have under the module's rule
(CDATA verbatim, text runs verbatim unless whitespace only, comments and processing
instructions transparent, line ends normalised), so the reference path is checked against
the rule and the fast path against the reference, whitespace included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from shared.wecom.errors import XmlError
from shared.wecom.xml import _parse_flat, _parse_streaming, parse_xml

XML_SPACE = " \t\r\n"
MAX_DEPTH = 8
MAX_ELEMENTS = 2000

# Every character XML 1.0 allows (its Char production), with those that matter here likely.
_CHAR = st.one_of(
    st.sampled_from(list(" \t\n\r]>&<'\"-!?x1你\u3000\xa0\x85\x7f\u200b")),
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\ufffe\uffff"),
)
_SPACE = st.text(alphabet=" \t\n\r", max_size=4)
_NAMES = st.sampled_from(["A", "B", "Content", "MsgType", "x.y", "Z-z", "_u", "名"])
# Comment text may hold neither "--" nor a final "-": each "-" is followed by an "x".
_COMMENT_TEXT = st.text(alphabet=" x<>&]!?", max_size=8).map(lambda t: t.replace("x", "-x"))
# What the shapes WeCom sends hold: ASCII names, and no CR (which the fast path leaves to
# the parser; the other test and the explicit examples have it).
_FLAT_NAMES = st.sampled_from(["A", "B", "Content", "MsgType", "x.y", "Z-z", "_u"])
_FLAT_CHAR = st.one_of(
    st.sampled_from(list(" \t\n]>&<'\"-!?x1你\u3000\xa0\x85\x7f\u200b")),
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"], exclude_characters="\ufffe\uffff"),
)
_FLAT_SPACE = st.text(alphabet=" \t\n", max_size=4)


def _normalise_line_ends(text: str) -> str:
    """What a parser does to raw line ends (XML 1.0 §2.11); references are exempt."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _reference(char: str) -> str:
    named = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
    return named.get(char, f"&#x{ord(char):X};" if ord(char) % 2 else f"&#{ord(char)};")


@dataclass
class _Doc:
    """A document being written, and the value of the leaf being written."""

    out: list[str] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)  # kept pieces of the current leaf
    # The current text run: raw text (whose line ends the parser rewrites, even across two
    # of our pieces) and resolved references or breaks (which it leaves alone).
    run: list[tuple[str, bool]] = field(default_factory=list)

    def emit(self, text: str) -> None:
        self.out.append(text)

    def tail(self) -> str:
        return "".join(self.out)[-2:]

    def end_run(self) -> None:
        resolved: list[str] = []
        raw: list[str] = []
        for text, is_raw in self.run:
            if is_raw:
                raw.append(text)
            else:
                resolved.append(_normalise_line_ends("".join(raw)))
                raw.clear()
                resolved.append(text)
        resolved.append(_normalise_line_ends("".join(raw)))
        self.run.clear()
        run = "".join(resolved)
        if run.strip(XML_SPACE):
            self.pieces.append(run)


def _write_text(doc: _Doc, text: str, every: int = 0) -> None:
    raw: list[str] = []
    for index, char in enumerate(text):
        # "<" and "&" are markup, and "]]>" may not appear in text: those must be references.
        must = char in "<&" or (char == ">" and (doc.tail() + "".join(raw))[-2:] == "]]")
        if must or (every and index % every == 0):
            doc.emit("".join(raw))
            doc.run.append(("".join(raw), True))
            raw.clear()
            doc.emit(_reference(char))
            doc.run.append((char, False))
        else:
            raw.append(char)
    doc.emit("".join(raw))
    doc.run.append(("".join(raw), True))


def _write_cdata(doc: _Doc, content: str, cuts: list[int]) -> None:
    """``content`` as CDATA, split at "]]>" (as it must be) and at the chosen positions."""
    doc.end_run()
    sections: list[str] = []
    for part_index, piece in enumerate(content.split("]]>")):
        part = piece
        if part_index:
            sections[-1] += "]]"
            part = ">" + piece
        previous = 0
        for cut in sorted({c % (len(part) + 1) for c in cuts}):
            sections.append(part[previous:cut])
            previous = cut
        sections.append(part[previous:])
    for section in sections:
        doc.emit(f"<![CDATA[{section}]]>")
        doc.pieces.append(_normalise_line_ends(section))


# A text and which of its characters to write as references: every k-th (0: none).
_TEXT_PIECE = st.tuples(
    st.just("text"), st.tuples(st.text(_CHAR, max_size=12), st.sampled_from([0, 0, 0, 2, 3]))
)
_CDATA_PIECE = st.tuples(
    st.just("cdata"),
    st.tuples(
        st.one_of(st.text(_CHAR, max_size=16), st.sampled_from(["]]>", "a]]>b", "  ", "\n"])),
        st.lists(st.integers(0, 20), max_size=2),
    ),
)
_MISC_PIECE = st.tuples(st.sampled_from(["comment", "pi"]), _COMMENT_TEXT)
_PIECE = st.one_of(_TEXT_PIECE, _CDATA_PIECE, _MISC_PIECE, st.tuples(st.just("space"), _SPACE))


def _write_piece(doc: _Doc, piece: tuple[str, Any]) -> None:
    kind, data = piece
    if kind == "text":
        _write_text(doc, *data)
    elif kind == "space":
        _write_text(doc, data)
    elif kind == "cdata":
        _write_cdata(doc, *data)
    elif kind == "comment":
        doc.emit(f"<!--{data}-->")
        doc.run.append(("", False))  # the text on either side is not adjacent
    else:
        doc.emit(f"<?pi {data.replace('?', '')}?>")
        doc.run.append(("", False))


def _add(target: dict[str, Any], name: str, value: Any) -> None:
    if name not in target:
        target[name] = value
    elif isinstance(target[name], list):
        target[name].append(value)
    else:
        target[name] = [target[name], value]


@st.composite
def _element(draw: st.DrawFn, doc: _Doc, target: dict[str, Any], depth: int, flat: bool) -> None:
    """Write one element into ``doc`` and its value into ``target``."""
    name = draw(_FLAT_NAMES if flat else _NAMES)
    attributes = "" if flat or draw(st.integers(0, 9)) else ' k="v&amp;"'
    if not flat and draw(st.integers(0, 7)) == 0:
        doc.emit(f"<{name}{attributes}/>")
        _add(target, name, "")
        return
    doc.emit(f"<{name}{attributes}>")
    if not flat and depth < 4 and draw(st.integers(0, 3)) == 0:  # a branch
        branch: dict[str, Any] = {}
        for index in range(draw(st.integers(1, 3))):
            if index or draw(st.booleans()):
                _write_piece(doc, draw(_PIECE))
            doc.run.clear()
            draw(_element(doc, branch, depth + 1, flat))
        doc.run.clear()
        doc.pieces.clear()
        doc.emit(f"</{name}>")
        _add(target, name, branch)
        return
    doc.run.clear()
    doc.pieces.clear()
    if flat:  # the shapes WeCom sends: one CDATA section, or plain text, padded
        if draw(st.booleans()):
            content = draw(st.text(_FLAT_CHAR, max_size=20).map(lambda t: t.replace("]]>", "")))
            _write_text(doc, draw(_FLAT_SPACE))
            _write_cdata(doc, content, [])
            _write_text(doc, draw(_FLAT_SPACE))
        else:
            text = draw(st.text(_FLAT_CHAR, max_size=12))
            _write_text(doc, text.replace("<", "").replace("&", ""))
    else:
        for piece in draw(st.lists(_PIECE, max_size=5)):
            _write_piece(doc, piece)
    doc.end_run()
    doc.emit(f"</{name}>")
    _add(target, name, "".join(doc.pieces))


_PROLOGS = [
    "",
    '<?xml version="1.0"?>',
    '<?xml version="1.0" encoding="UTF-8"?>',
    "<?xml version='1.0' encoding='utf-8' ?>",
    '<?xml  version = "1.0"\n encoding="latin-1"?>',
    '<?xml version="1.0" standalone="yes"?>',
]


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A well-formed ``<xml>`` document and the dict the rule says it reads as."""
    flat = draw(st.booleans())
    doc = _Doc()
    space = _FLAT_SPACE if flat else _SPACE
    doc.emit(draw(st.sampled_from(_PROLOGS[:-1] if flat else _PROLOGS)))
    doc.emit(draw(space))
    if not flat and draw(st.booleans()):
        doc.emit("<!-- before -->\n")
    doc.emit("<xml>")
    expected: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 6))):
        doc.emit(draw(space))
        if not flat and draw(st.integers(0, 5)) == 0:
            _write_piece(doc, draw(st.one_of(_TEXT_PIECE, _MISC_PIECE)))
        doc.run.clear()
        draw(_element(doc, expected, 2, flat))
    doc.emit(draw(space))
    doc.emit("</xml>")
    doc.emit(draw(space))
    if not flat and draw(st.booleans()):
        doc.emit("<!-- after -->")
    return "".join(doc.out), expected


_MUTATIONS = ["\x01", "&", "<", "]]>", "&bogus;", "</A>", "\ufffe", "<!DOCTYPE x>", "<A>", "\r"]


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """A generated document with one fault (or none) at a random place: mostly not XML."""
    text, _ = draw(documents())
    at = draw(st.integers(0, len(text)))
    mutation = draw(st.sampled_from([*_MUTATIONS, "truncate", " before"]))
    if mutation == "truncate":
        return text[:at]
    if mutation == " before":
        return " " + text
    return text[:at] + mutation + text[at:]


def _reference_or_error(text: str) -> dict[str, Any] | str:
    try:
        return _parse_streaming(text, MAX_DEPTH, MAX_ELEMENTS)
    except XmlError as exc:
        return f"XmlError: {exc}"


# About 4 ms per generated document on one core: some 3,000 documents in all, well under 20 s.
_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(documents())
@example(("<xml>\n  <Content>\n  <![CDATA[x]]>\n</Content>\n</xml>", {"Content": "x"}))
@example(
    ("<xml><A> 12 </A><B>  </B><C><![CDATA[  ]]></C></xml>", {"A": " 12 ", "B": "", "C": "  "})
)
@example(("<xml><A>p <![CDATA[q]]> <![CDATA[r]]> s</A></xml>", {"A": "p qr s"}))
@example(("<xml><A>a<!-- c --> b</A><B> <!-- c --> </B></xml>", {"A": "a b", "B": ""}))
@example(("<xml><A>\r\n<![CDATA[\r\nx\r]]>&#13;</A></xml>", {"A": "\nx\n"}))
@settings(_SETTINGS, max_examples=2000)
def test_both_paths_read_every_document_by_the_rule(case: tuple[str, dict[str, Any]]) -> None:
    """The reference path gives each leaf the value the rule defines; the fast path, when it
    takes a document, gives exactly the same dict; parse_xml gives it too."""
    text, expected = case
    assert _parse_streaming(text, MAX_DEPTH, MAX_ELEMENTS) == expected
    fast = _parse_flat(text, MAX_DEPTH, MAX_ELEMENTS)
    event("fast path" if fast is not None else "parser")
    if fast is not None:
        assert fast == expected
    assert parse_xml(text.encode()) == expected


@given(mutated_documents())
@example(' <?xml version="1.0"?><xml><A>1</A></xml>')  # a declaration must open the document
@example("<?xml ?><xml><A>1</A></xml>")
@example("<xml><A>a]]>b</A></xml>")
@example("<xml><A>\x85\u2028</A></xml>")
@settings(_SETTINGS, max_examples=1000)
def test_the_fast_path_never_accepts_what_the_reference_refuses(text: str) -> None:
    """On near misses and faults, the fast path answers like the reference or steps aside."""
    reference = _reference_or_error(text)
    fast = _parse_flat(text, MAX_DEPTH, MAX_ELEMENTS)
    if fast is not None:
        assert fast == reference
    try:
        public: dict[str, Any] | str = parse_xml(text.encode())
    except XmlError:
        # The message may differ: parse_xml refuses an empty body before parsing it.
        assert isinstance(reference, str)
    else:
        assert public == reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "<xml><Content><![CDATA[def f(x):\n    return x\n]]></Content></xml>",
            "def f(x):\n    return x\n",
        ),
        ("<xml><Content><![CDATA[\tindented\t]]></Content></xml>", "\tindented\t"),
        ("<xml><Content><![CDATA[ \n\t ]]></Content></xml>", " \n\t "),
        ("<xml>\n  <Content>\n    <![CDATA[  x  ]]>\n  </Content>\n</xml>", "  x  "),
        ("<xml><Content>  plain  </Content></xml>", "  plain  "),
        ("<xml><Content>\u3000全角\u3000</Content></xml>", "\u3000全角\u3000"),
    ],
)
def test_the_fast_path_takes_exact_content_shapes(text: str, expected: str) -> None:
    """The differential tests pass if the fast path always steps aside: these shapes, each a
    member's message as WeCom sends it, must be read by it, exactly."""
    assert _parse_flat(text, MAX_DEPTH, MAX_ELEMENTS) == {"Content": expected}
    assert _parse_streaming(text, MAX_DEPTH, MAX_ELEMENTS) == {"Content": expected}
