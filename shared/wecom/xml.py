"""Hardened parsing of WeCom callback XML (the outer envelope and the decrypted body) into dicts.

Callback bodies arrive from the internet before anything is authenticated (the outer envelope
must be parsed to find the ciphertext the signature covers), so every bound is enforced and
every failure is one :class:`~shared.wecom.errors.XmlError` whose message never echoes input.

What a leaf element's value is (both parsing paths below implement exactly this rule, and a
differential test holds them to it):

- Its content is read as a sequence of *text runs* and *CDATA sections*; a run is the
  character data between two pieces of markup (a tag or a CDATA section), with references
  (``&amp;``, ``&#x41;``) resolved, and comments and processing instructions left out as if
  they were not there.
- Every CDATA section is kept verbatim: leading indentation, trailing newlines, inner
  whitespace, a section made only of whitespace.
- A text run is kept verbatim too, unless it is whitespace only (space, tab, CR, LF: XML's
  whitespace, not Unicode's, so a no-break or ideographic space is text): that is the
  indentation *around* CDATA sections and elements, and it is dropped. So
  ``<A>\n  <![CDATA[ x ]]>\n</A>`` is ``" x "``, ``<A> 12 </A>`` is ``" 12 "``, and
  ``<A>  </A>`` is ``""`` (whitespace around nothing).
- The value is the kept pieces concatenated in document order; an element with child
  elements is a dict instead, and its own text is not part of anything.

Line ends are the only change XML itself makes: a parser turns CR LF and a lone CR into LF,
in CDATA too (XML 1.0 §2.11). Callers that convert a value to a number trim it there.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from shared.wecom.errors import XmlError

__all__ = ["cdata", "parse_envelope", "parse_xml"]

ROOT_TAG = "xml"

# XML's whitespace (production S). A CR reaches a value only as a reference ("&#13;").
_XML_SPACE = " \t\r\n"

# The shape of nearly every WeCom callback: an optional XML declaration, then <xml> holding
# only leaf elements whose content is one CDATA section surrounded by optional whitespace, or
# plain text without markup or references. Such a document is read with regular expressions
# instead of a parser (several times faster); anything else -- nesting, attributes,
# references, split or several CDATA sections, comments, CR, characters XML forbids -- falls
# back to the parser below. This path also sees unauthenticated bodies (an outer envelope of
# an unusual shape), so it must stay linear: every quantifier is possessive (*+) and each
# child atomic, so no part of a child can give back what it took. (Plain *, with whitespace
# matchable by three neighbouring parts, made "<xml><a>" and 2,000 spaces cost seconds, and
# 60 KB of them hours.) The CDATA body is the "unrolled loop" form of "anything up to the
# first ]]>"; plain text is the same without "<" and "&" (and "]]>" is not allowed in text).
# The declaration must open the document (XML 1.0 §2.8: not even whitespace before it).
_DECLARATION = (
    r"<\?xml[ \t\n]++version[ \t\n]*+=[ \t\n]*+(?:\"1\.0\"|'1\.0')"
    r"(?:[ \t\n]++encoding[ \t\n]*+=[ \t\n]*+"
    r"(?:\"[A-Za-z][A-Za-z0-9._-]*+\"|'[A-Za-z][A-Za-z0-9._-]*+'))?+"
    r"[ \t\n]*+\?>"
)
_FLAT_HEAD = re.compile(rf"(?:{_DECLARATION})?+[ \t\n]*+<xml>")
_FLAT_CHILD_PATTERN = (
    r"[ \t\n]*+<([A-Za-z_][A-Za-z0-9_.-]*+)>"
    r"(?:[ \t\n]*+<!\[CDATA\[([^\]]*+(?:\](?!\]>)[^\]]*+)*+)\]\]>[ \t\n]*+"
    r"|([^<&\]]*+(?:\](?!\]>)[^<&\]]*+)*+))"
    r"</\1>"
)
# findall reads the children of a document _FLAT_BODY has accepted. Its pattern starts at
# the "<": with the leading whitespace, every failed try at a space would scan all the
# whitespace after it, and 64 KB of spaces before "</xml>" cost seconds.
_FLAT_CHILD = re.compile(_FLAT_CHILD_PATTERN.removeprefix(r"[ \t\n]*+"))
_FLAT_TAIL_PATTERN = r"[ \t\n]*+</xml>[ \t\n]*+"
# Everything after the head: children, each atomic (?>...) and repeated possessively (*+),
# so a document that is not of this shape fails in one pass, never backtracking.
_FLAT_BODY = re.compile(f"(?>{_FLAT_CHILD_PATTERN})*+{_FLAT_TAIL_PATTERN}")
# What the fast path leaves to the parser: CR (the parser rewrites line ends) and the
# characters outside XML 1.0's Char production (the parser refuses them). Surrogates, the
# rest of that production's complement, cannot come out of a strict UTF-8 decode.
_NEEDS_PARSER = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff]")

# The outer envelope exactly as WeCom posts it (protocol doc §2.6): <xml> holding
# ToUserName, AgentID and Encrypt in that order (the first two optional), each one CDATA
# section of printable ASCII without spaces, "<" or "]", and nothing else: no declaration,
# no whitespace. One match over the bytes reads it; any other shape takes parse_xml.
_ENVELOPE_VALUE = rb"<!\[CDATA\[([!-;=-\\^-~]*)\]\]>"
_ENVELOPE = re.compile(
    rb"<xml>"
    rb"(?:<ToUserName>" + _ENVELOPE_VALUE + rb"</ToUserName>)?"
    rb"(?:<AgentID>" + _ENVELOPE_VALUE + rb"</AgentID>)?"
    rb"<Encrypt>" + _ENVELOPE_VALUE + rb"</Encrypt>"
    rb"</xml>"
)
# An optional byte order mark and XML declaration, the only "<?" an envelope may hold.
_ENVELOPE_PROLOG = re.compile(rb"(?:\xef\xbb\xbf)?+(?:<\?xml[ \t\r\n][^<>?]*+\?>)?+")
_ENVELOPE_MAX_DEPTH = 3
_ENVELOPE_MAX_ELEMENTS = 16


def parse_xml(
    data: bytes, *, max_bytes: int = 65536, max_depth: int = 8, max_elements: int = 2000
) -> dict[str, Any]:
    """Parse a callback body whose root is ``<xml>`` into a dict of its children.

    A leaf element becomes its text exactly as sent (the rule is in the module docstring:
    CDATA verbatim, whitespace-only runs around CDATA and elements dropped); an element
    with child elements becomes a nested dict built the same way; a name repeated among
    siblings becomes a list of the values in document order. Attributes, comments and
    processing instructions are ignored.

    Args:
        data: the raw body, UTF-8.
        max_bytes: larger bodies are refused before any parsing.
        max_depth: deepest element nesting accepted; the root is at depth 1.
        max_elements: most elements accepted, the root included.

    Returns:
        The children of the root element.

    Raises:
        XmlError: the body is empty, too big, not UTF-8, malformed, has a DTD, an entity
            declaration or an external reference, a root other than ``<xml>``, or exceeds
            the depth or element bound.
    """
    text = _precheck(data, max_bytes)
    flat = _parse_flat(text, max_depth, max_elements)
    if flat is not None:
        return flat
    return _parse_streaming(text, max_depth, max_elements)


def parse_envelope(data: bytes, *, max_bytes: int = 65536) -> dict[str, Any]:
    """Parse the outer envelope of a POSTed callback (``ToUserName``, ``AgentID``, ``Encrypt``).

    Returns and raises what ``parse_xml(data, max_bytes=max_bytes, max_depth=3,
    max_elements=16)`` would, except that an envelope holding a comment, a processing
    instruction (other than the XML declaration) or a DTD -- anywhere, CDATA content
    included: WeCom's envelope values are ids and base64 -- is refused before any parsing.
    The envelope is parsed before anything is authenticated, on every callback, and is tiny
    and fixed: its usual shape is read with one regular expression over the bytes, and any
    other goes to :func:`parse_xml`.
    """
    if len(data) <= max_bytes:
        envelope = _ENVELOPE.fullmatch(data)
        if envelope is not None:
            to_user_name, agent_id, encrypt = envelope.groups()
            result: dict[str, Any] = {}
            if to_user_name is not None:
                result["ToUserName"] = to_user_name.decode("ascii")
            if agent_id is not None:
                result["AgentID"] = agent_id.decode("ascii")
            result["Encrypt"] = encrypt.decode("ascii")
            return result
        _refuse_envelope_markup(data)
    return parse_xml(
        data,
        max_bytes=max_bytes,
        max_depth=_ENVELOPE_MAX_DEPTH,
        max_elements=_ENVELOPE_MAX_ELEMENTS,
    )


def cdata(text: str) -> str:
    """``text`` as CDATA, so that a parser gives it back exactly: nothing is escaped.

    CDATA ends at the first ``]]>``, so a text holding one is split there into two
    sections (``]]`` ends one, ``>`` opens the next: ``]]]]><![CDATA[>``), which a parser
    joins again.

    Args:
        text: any text. (Characters XML forbids, such as NUL, cannot be sent at all, and
            a parser turns a CR into LF: both are the caller's concern.)

    Returns:
        One or more adjacent CDATA sections.
    """
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _refuse_envelope_markup(data: bytes) -> None:
    """Refuse, with a few byte scans, the markup no envelope has and a flood makes costly.

    A 60 KB comment costs the parser several times a plain body of that size; these scans
    cost microseconds. Counting "<!" against CDATA openers also catches a DTD early.
    """
    prolog = _ENVELOPE_PROLOG.match(data)  # always matches: both its parts are optional
    rest = data[prolog.end() :] if prolog is not None else data
    if b"<!--" in rest:
        raise XmlError("comments are not allowed in the envelope")
    if b"<?" in rest:
        raise XmlError("processing instructions are not allowed in the envelope")
    if rest.count(b"<!") != rest.count(b"<![CDATA["):
        raise XmlError("a DTD is not allowed")


def _precheck(data: bytes, max_bytes: int) -> str:
    """Refuse, without parsing, what no callback can be; return the body as text."""
    if not data:
        raise XmlError("the XML body is empty")
    if len(data) > max_bytes:
        raise XmlError(f"the XML body exceeds {max_bytes} bytes")
    try:
        # Parsing text rather than bytes makes expat ignore any encoding declaration:
        # WeCom sends UTF-8 only.
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XmlError(f"the XML body is not valid UTF-8 (byte {exc.start})") from None
    return text


def _parse_flat(text: str, max_depth: int, max_elements: int) -> dict[str, Any] | None:
    """The children of a flat ``<xml>`` document, or None when it is not of that shape.

    The fast path: it gives exactly what :func:`_parse_streaming` gives for every document
    it accepts (a differential test checks it), and steps aside for everything else.
    """
    head = _FLAT_HEAD.match(text)
    if head is None:
        return None
    start = head.end()
    # One pass checks the shape; findall then reads the same children, in C. It cannot find
    # anything else: each child starts where the previous ended, and the tail has no "<x>".
    if _FLAT_BODY.fullmatch(text, start) is None:
        return None
    children: list[tuple[str, str, str]] = _FLAT_CHILD.findall(text, start)
    if children and (len(children) >= max_elements or max_depth < 2):  # the root counts too
        return None  # let the bounded parser produce the precise error
    # A child is one CDATA section (its content verbatim) or plain text (verbatim unless it
    # is whitespace only: "t.strip() and t" is "" then, else t). An unmatched group is "",
    # so an empty section reads as empty text.
    if text.isprintable():
        # The usual case. Printable text has no whitespace but the space, and nothing the
        # parser would rewrite (CR) or refuse (control characters).
        result = {tag: cdata or (plain.strip(" ") and plain) for tag, cdata, plain in children}
        if len(result) == len(children):
            return result
    result = {}
    for tag, cdata, plain in children:
        value = cdata or (plain.strip(_XML_SPACE) and plain)
        # Rather than re-implement the parser's rewriting of CR and its refusal of what is
        # not an XML character, a value holding one takes the parser. (The shape leaves
        # only values free: between tags there is nothing but [ \t\n].)
        if not value.isprintable() and _NEEDS_PARSER.search(value) is not None:
            return None
        _add_value(result, tag, value)
    return result


def _parse_streaming(text: str, max_depth: int, max_elements: int) -> dict[str, Any]:
    """The reference path: defusedxml, building the dict while the parser streams.

    defusedxml refuses a DTD at its first byte, and an element flood or a deep nest is
    refused at the first element over a bound. The text goes to expat as str, so no
    encoding declaration can reinterpret what was checked.
    """
    builder = _BoundedDictBuilder(max_depth, max_elements)
    try:
        parser = DefusedXMLParser(
            target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        # ElementTree reports CDATA as plain data; the rule needs to know which is which, so
        # the builder hears the section boundaries from the expat parser underneath (the
        # same attribute defusedxml sets its own handlers on).
        expat = parser.parser
        expat.StartCdataSectionHandler = builder.start_cdata
        expat.EndCdataSectionHandler = builder.end_cdata
        parser.feed(text)
        parser.close()
    except ParseError as exc:
        line, column = exc.position
        raise XmlError(f"malformed XML at line {line}, column {column}") from exc
    # defusedxml's exceptions carry the offending names and values in their text: raised
    # without them so that nothing of the body reaches a log line.
    except DTDForbidden:
        raise XmlError("a DTD is not allowed") from None
    except EntitiesForbidden:
        raise XmlError("entity declarations are not allowed") from None
    except ExternalReferenceForbidden:
        raise XmlError("external references are not allowed") from None
    return builder.result


def _check_root(tag: str) -> None:
    if tag != ROOT_TAG:
        raise XmlError(f"the root element must be <{ROOT_TAG}>")


def _add_value(parent: dict[str, Any], name: str, value: Any) -> None:
    """Store ``value`` under ``name``; a repeated name turns into a list in document order."""
    existing = parent.get(name)
    if existing is None:
        parent[name] = value
    # Leaves are str and branches dict, so a list can only come from an earlier repeat.
    elif type(existing) is list:
        existing.append(value)
    else:
        parent[name] = [existing, value]


def _too_deep(max_depth: int) -> XmlError:
    return XmlError(f"the XML nests deeper than {max_depth} levels")


def _too_many(max_elements: int) -> XmlError:
    return XmlError(f"the XML has more than {max_elements} elements")


class _BoundedDictBuilder:
    """A parser target that builds the dict while parsing and stops at the first bound crossed.

    Each open element has one entry on two parallel stacks: its children (``None`` until a
    first child makes it a branch; a leaf keeps ``None``) and the pieces of its value kept
    so far. The text run being read (character data arrives in chunks) is judged at the
    next boundary -- a tag or a CDATA section -- and kept unless it is whitespace only.
    """

    __slots__ = (
        "_children",
        "_count",
        "_in_cdata",
        "_max_depth",
        "_max_elements",
        "_pieces",
        "_run",
        "result",
    )

    def __init__(self, max_depth: int, max_elements: int) -> None:
        self._max_depth = max_depth
        self._max_elements = max_elements
        self._count = 0
        self._children: list[dict[str, Any] | None] = []
        self._pieces: list[list[str]] = []
        self._run: list[str] = []
        self._in_cdata = False
        self.result: dict[str, Any] = {}

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._count += 1
        if self._count > self._max_elements:
            raise _too_many(self._max_elements)
        children = self._children
        if not children:
            _check_root(tag)
        elif len(children) >= self._max_depth:
            raise _too_deep(self._max_depth)
        elif children[-1] is None:
            children[-1] = {}
        # The parent is a branch now: its text is not part of any value.
        self._run.clear()
        children.append(None)
        self._pieces.append([])

    def data(self, data: str) -> None:
        if self._in_cdata:
            self._pieces[-1].append(data)
        else:
            self._run.append(data)

    def start_cdata(self) -> None:
        self._end_run()
        self._in_cdata = True

    def end_cdata(self) -> None:
        self._in_cdata = False

    def end(self, tag: str) -> None:
        self._end_run()
        children = self._children.pop()
        pieces = self._pieces.pop()
        if not self._children:
            self.result = children or {}
            return
        parent = self._children[-1]
        if parent is not None:  # always: start() of this element made its parent a branch
            _add_value(parent, tag, children if children is not None else "".join(pieces))

    def close(self) -> None:
        """Nothing to finish: ``end()`` of the root stored :attr:`result`."""

    def _end_run(self) -> None:
        """Keep the text run just ended unless it is whitespace only (indentation)."""
        run = self._run
        if run:
            text = "".join(run)
            run.clear()
            if text.strip(_XML_SPACE):
                self._pieces[-1].append(text)
