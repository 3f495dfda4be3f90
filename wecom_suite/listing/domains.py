"""Domain, URL and IP checks: pure functions that return the rule ids a value breaks.

A domain is WeCom's "trusted domain" style value: a bare host name, no scheme, path or port
(protocol doc §13.2). Internationalised names are checked through IDNA, so ``例子.中国`` and
its punycode form ``xn--fsqu00a.xn--fiqs8s`` are both accepted.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# One LDH label (RFC 1035 as relaxed by RFC 1123), checked on the ASCII (punycode) form.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_PORT = re.compile(r":\d*$")
_MAX_DOMAIN_LENGTH = 253


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def _ascii_labels(domain: str) -> list[str] | None:
    """The punycode labels of ``domain``, or None when IDNA cannot encode it."""
    try:
        labels = domain.encode("idna").decode("ascii").split(".")
    except UnicodeError:
        return None
    for label in labels:
        if label.lower().startswith("xn--"):
            # A hand-written punycode label must decode, or WeCom sees garbage.
            try:
                label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                return None
    return labels


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
    labels = _ascii_labels(text)
    if (
        labels is None
        or len(labels) < 2
        or len(".".join(labels)) > _MAX_DOMAIN_LENGTH
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
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
