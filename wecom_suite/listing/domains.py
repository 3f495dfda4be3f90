"""Domain, URL and IP checks: pure functions that return the rule ids a value breaks.

A domain is WeCom's "trusted domain" style value: a bare host name, no scheme, path or port
(protocol doc §13.2). Internationalised names are checked by the ``idna`` package (IDNA 2008
with UTS 46 mapping, as browsers use), so ``例子.中国`` and its punycode form
``xn--fsqu00a.xn--fiqs8s`` are both accepted.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import idna

_PORT = re.compile(r":\d*$")


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def ascii_domain(domain: str) -> str | None:
    """The ASCII (punycode) form of ``domain``, or None when it is not a valid IDNA name.

    IDNA 2008, not the stdlib's IDNA 2003 codec: ``faß.de`` is ``xn--fa-hia.de`` (not
    ``fass.de``) and symbols such as ``☃`` are refused. UTS 46 first maps what a user may type
    (upper case, full-width letters). Every label is then checked: letters, digits and inner
    hyphens only, at most 63 characters, and an ``xn--`` label must decode to a valid name.
    """
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def domain_problem(value: str) -> str | None:
    """The first domain rule ``value`` breaks (``domain.scheme``, …), or None when valid."""
    text = value.strip()
    if "://" in text or text.lower().startswith(("http:", "https:")):
        return "domain.scheme"
    if any(mark in text for mark in "/?#"):
        return "domain.path"
    if _parse_ip(text) is not None:
        return "domain.ip"
    if _PORT.search(text):
        host = _PORT.sub("", text)
        return "domain.ip" if _parse_ip(host) is not None else "domain.port"
    encoded = ascii_domain(text)
    labels = encoded.split(".") if encoded is not None else []
    # idna keeps a trailing dot (an empty last label); a WeCom domain has none.
    if len(labels) < 2 or not all(labels) or labels[-1].isdigit():
        return "domain.label"
    return None


def url_problem(value: str, *, require_https: bool) -> str | None:
    """``url.syntax`` or ``url.https`` when ``value`` breaks that rule, else None."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return "url.syntax"
    if parts.scheme.lower() not in {"http", "https"} or not hostname or text != value:
        return "url.syntax"
    if any(char.isspace() for char in text):
        return "url.syntax"
    if require_https and parts.scheme.lower() != "https":
        return "url.https"
    return None


def ip_problem(value: str) -> str | None:
    """``ip.invalid`` or ``ip.not_public`` when ``value`` breaks that rule, else None.

    Documentation ranges such as 203.0.113.0/24 count as not public: WeCom would never see
    a request from one.
    """
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return "ip.invalid"
    if not address.is_global or address.is_multicast:
        return "ip.not_public"
    return None
