"""Hardened parsing of WeCom callback XML (the outer envelope and the decrypted body) into dicts.

Callback bodies arrive from the internet before anything is authenticated (the outer envelope
must be parsed to find the ciphertext the signature covers), so every bound is enforced and
every failure is one :class:`~shared.wecom.errors.XmlError` whose message never echoes input.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.etree.ElementTree import fromstring as c_fromstring

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from shared.wecom.errors import XmlError

__all__ = ["parse_envelope", "parse_xml"]

ROOT_TAG = "xml"

_CDATA_OPEN = "<![CDATA["

# The shape of nearly every WeCom callback: an optional XML declaration, then <xml> holding
# only leaf elements whose content is one CDATA section or plain text without markup or
# entities, surrounded by optional whitespace. Such a document is read with regular
# expressions instead of a parser (several times faster); anything else -- nesting,
# attributes, entities, split CDATA, comments -- falls back to the parsers below. This path
# also sees unauthenticated bodies (an outer envelope of an unusual shape), so it must stay
# linear: every quantifier is possessive (*+) and each child atomic, so no part of a child
# can give back what it took. (Plain *, with whitespace matchable by three neighbouring
# parts, made "<xml><a>" and 2,000 spaces cost seconds, and 60 KB of them hours.) The CDATA
# body is the "unrolled loop" form of "anything up to the first ]]>".
_FLAT_HEAD = re.compile(r"[ \t\r\n]*(?:<\?xml[^<>?]*\?>[ \t\r\n]*)?<xml>")
_FLAT_CHILD_PATTERN = (
    r"[ \t\r\n]*+<([A-Za-z_][A-Za-z0-9_.-]*+)>[ \t\r\n]*+"
    r"(?:<!\[CDATA\[([^\]]*+(?:\](?!\]>)[^\]]*+)*+)\]\]>|([^<&\]]*+(?:\](?!\]>)[^<&\]]*+)*+))"
    r"[ \t\r\n]*+</\1>"
)
# findall reads the children of a document _FLAT_BODY has accepted. Its pattern starts at
# the "<": with the leading whitespace, every failed try at a space would scan all the
# whitespace after it, and 64 KB of spaces before "</xml>" cost seconds.
_FLAT_CHILD = re.compile(_FLAT_CHILD_PATTERN.removeprefix(r"[ \t\r\n]*+"))
_FLAT_TAIL_PATTERN = r"[ \t\r\n]*</xml>[ \t\r\n]*"
# Everything after the head: children, each atomic (?>...) and repeated possessively (*+),
# so a document that is not of this shape fails in one pass, never backtracking.
_FLAT_BODY = re.compile(f"(?>{_FLAT_CHILD_PATTERN})*+{_FLAT_TAIL_PATTERN}")

# The outer envelope exactly as WeCom posts it (protocol doc §2.6): <xml> holding
# ToUserName, AgentID and Encrypt in that order (the first two optional), each one CDATA
# section of printable ASCII without spaces or "]", and nothing else: no declaration, no
# whitespace. One match over the bytes reads it; any other shape takes parse_xml.
_ENVELOPE_VALUE = rb"<!\[CDATA\[([!-\\^-~]*)\]\]>"
_ENVELOPE = re.compile(
    rb"<xml>"
    rb"(?:<ToUserName>" + _ENVELOPE_VALUE + rb"</ToUserName>)?"
    rb"(?:<AgentID>" + _ENVELOPE_VALUE + rb"</AgentID>)?"
    rb"<Encrypt>" + _ENVELOPE_VALUE + rb"</Encrypt>"
    rb"</xml>"
)
_ENVELOPE_MAX_DEPTH = 3
_ENVELOPE_MAX_ELEMENTS = 16


def parse_xml(
    data: bytes, *, max_bytes: int = 65536, max_depth: int = 8, max_elements: int = 2000
) -> dict[str, Any]:
    """Parse a callback body whose root is ``<xml>`` into a dict of its children.

    A leaf element becomes its text with surrounding whitespace stripped (CDATA and plain
    text alike); an element with child elements becomes a nested dict built the same way;
    a name repeated among siblings becomes a list of the values in document order.
    Attributes, comments and processing instructions are ignored.

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
    flat = _parse_flat(text, max_elements)
    if flat is not None:
        return flat
    try:
        if data.count(b"<") <= max_elements and _has_no_declarations(text):
            # Every element opens with a '<', so this document cannot exceed the element
            # bound, and the walk checks depth. Its text has no "<!" other than CDATA
            # openers, so it has no DTD: without one expat can neither declare nor expand
            # an entity nor reach an external resource. The text goes to the parser as str,
            # so no encoding declaration can reinterpret what was checked. Under those
            # conditions the C parser -- about three times faster than defusedxml's
            # pure-Python one -- is safe, and every real callback takes this path.
            root = c_fromstring(text)  # noqa: S314 -- no DTD possible, see above
            return _tree_to_dict(root, max_depth)
        # Anything else (more markup, comments, a DTD, "<!" inside CDATA content): defusedxml
        # refuses a DTD at its first byte, and the dict is built while the parser streams,
        # so an element flood or a deep nest is refused at the first element over a bound.
        builder = _BoundedDictBuilder(max_depth, max_elements)
        parser = DefusedXMLParser(
            target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
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


def parse_envelope(data: bytes, *, max_bytes: int = 65536) -> dict[str, Any]:
    """Parse the outer envelope of a POSTed callback (``ToUserName``, ``AgentID``, ``Encrypt``).

    Returns and raises exactly what ``parse_xml(data, max_bytes=max_bytes, max_depth=3,
    max_elements=16)`` would. The envelope is parsed before anything is authenticated, on
    every callback, and is tiny and fixed: its usual shape is read with one regular
    expression over the bytes, and any other goes to :func:`parse_xml`.
    """
    envelope = _ENVELOPE.fullmatch(data) if len(data) <= max_bytes else None
    if envelope is not None:
        to_user_name, agent_id, encrypt = envelope.groups()
        result: dict[str, Any] = {}
        if to_user_name is not None:
            result["ToUserName"] = to_user_name.decode("ascii")
        if agent_id is not None:
            result["AgentID"] = agent_id.decode("ascii")
        result["Encrypt"] = encrypt.decode("ascii")
        return result
    return parse_xml(
        data,
        max_bytes=max_bytes,
        max_depth=_ENVELOPE_MAX_DEPTH,
        max_elements=_ENVELOPE_MAX_ELEMENTS,
    )


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


def _parse_flat(text: str, max_elements: int) -> dict[str, Any] | None:
    """The children of a flat ``<xml>`` document, or None when it is not of that shape."""
    head = _FLAT_HEAD.match(text)
    if head is None:
        return None
    start = head.end()
    # One pass checks the shape; findall then reads the same children, in C. It cannot find
    # anything else: each child starts where the previous ended, and the tail has no "<x>".
    if _FLAT_BODY.fullmatch(text, start) is None:
        return None
    children: list[tuple[str, str, str]] = _FLAT_CHILD.findall(text, start)
    if len(children) >= max_elements:  # the root counts too
        return None  # let the bounded parser produce the precise error
    if text.isprintable():
        # The usual case. A parser refuses control characters and normalises line ends;
        # printable text has neither, nor any whitespace but the space. (An unmatched
        # group is "", so an empty CDATA section and empty text read alike.)
        result = {tag: (cdata or plain).strip(" ") for tag, cdata, plain in children}
        if len(result) == len(children):
            return result
    result = {}
    for tag, cdata, plain in children:
        value = (cdata or plain).strip(" \t\n")
        # Rather than re-implement the parser's handling of control characters and line
        # ends, any value that is not plainly printable takes the parser.
        if not value.isprintable():
            return None
        if tag in result:
            _add_value(result, tag, value)
        else:
            result[tag] = value
    return result


def _has_no_declarations(text: str) -> bool:
    """True when every "<!" in ``text`` opens a CDATA section (no DTD, no comment)."""
    return text.count("<!") == text.count(_CDATA_OPEN)


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


def _tree_to_dict(root: Element, max_depth: int) -> dict[str, Any]:
    """Convert a parsed tree with an explicit stack: depth is attacker-controlled."""
    _check_root(root.tag)
    result: dict[str, Any] = {}
    pending: list[tuple[Element, dict[str, Any], int]] = [(root, result, 1)]
    while pending:
        element, target, depth = pending.pop()
        if depth >= max_depth and len(element):
            raise _too_deep(max_depth)
        for child in element:
            value: Any
            if len(child):
                value = {}
                pending.append((child, value, depth + 1))
            else:
                value = child.text.strip() if child.text else ""
            _add_value(target, child.tag, value)
    return result


class _BoundedDictBuilder:
    """A parser target that builds the dict while parsing and stops at the first bound crossed.

    Each open element has one entry on two parallel stacks: its children (``None`` until a
    first child makes it a branch; a leaf keeps ``None``) and its text fragments.
    """

    __slots__ = ("_children", "_count", "_max_depth", "_max_elements", "_texts", "result")

    def __init__(self, max_depth: int, max_elements: int) -> None:
        self._max_depth = max_depth
        self._max_elements = max_elements
        self._count = 0
        self._children: list[dict[str, Any] | None] = []
        self._texts: list[list[str]] = []
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
        children.append(None)
        self._texts.append([])

    def data(self, data: str) -> None:
        self._texts[-1].append(data)

    def end(self, tag: str) -> None:
        children = self._children.pop()
        text = self._texts.pop()
        if not self._children:
            self.result = children or {}
            return
        parent = self._children[-1]
        if parent is not None:  # always: start() of this element made its parent a branch
            _add_value(parent, tag, children if children is not None else "".join(text).strip())

    def close(self) -> None:
        """Nothing to finish: ``end()`` of the root stored :attr:`result`."""
