"""AMQP routing-key rules: topic pattern matching and validation of keys and patterns.

Semantics follow RabbitMQ's topic exchange: a key is split on ``.`` into words (the empty key
has no words, ``"a..b"`` has an empty middle word); in a pattern ``*`` matches exactly one
word and ``#`` matches zero or more words.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from shared.errors import InvalidRequest

MAX_KEY_BYTES = 255  # AMQP short string: routing keys and binding keys alike

_STAR = "*"
_HASH = "#"


class InvalidRoutingKey(InvalidRequest):
    """A routing key or binding pattern breaks the AMQP rules."""

    code = "bus_invalid_routing_key"
    reason = "invalid routing key"


def split_words(key: str) -> tuple[str, ...]:
    """Split a routing key or pattern into words the way RabbitMQ does.

    Args:
        key: a routing key or a topic pattern.

    Returns:
        The words; ``()`` for the empty key, which has no words at all (so ``#`` matches it
        and ``*`` does not).
    """
    return tuple(key.split(".")) if key else ()


def validate_routing_key(routing_key: str) -> None:
    """Check a routing key a message is published with.

    Any characters are allowed, ``*`` and ``#`` included (they are plain words in a key);
    only the AMQP length limit applies.

    Raises:
        InvalidRoutingKey: the key is longer than 255 bytes in UTF-8.
    """
    if len(routing_key.encode()) > MAX_KEY_BYTES:
        raise InvalidRoutingKey(f"routing key is longer than {MAX_KEY_BYTES} bytes")


def validate_binding_key(pattern: str, *, topic: bool) -> None:
    """Check the routing key of a binding.

    On a topic exchange a ``*`` or ``#`` must be a whole word: RabbitMQ would take ``a*`` as
    a literal word, which is never what the author meant.

    Args:
        pattern: the binding key.
        topic: whether the binding is on a topic exchange.

    Raises:
        InvalidRoutingKey: the key is too long, or a wildcard is part of a longer word.
    """
    validate_routing_key(pattern)
    if not topic:
        return
    for word in split_words(pattern):
        if word not in (_STAR, _HASH) and (_STAR in word or _HASH in word):
            raise InvalidRoutingKey(
                f"binding key {pattern!r}: '*' and '#' must be whole words, not part of {word!r}"
            )


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic exchange routes ``routing_key`` to a binding with ``pattern``.

    Args:
        pattern: the binding key (``*`` one word, ``#`` zero or more words).
        routing_key: the key the message was published with.

    Returns:
        True when the pattern matches the whole key.
    """
    return match_words(_pattern_words(pattern), split_words(routing_key))


@lru_cache(maxsize=1024)
def _pattern_words(pattern: str) -> tuple[str, ...]:
    # Binding patterns are few and reused on every match; collapsing runs of "#" once here
    # keeps the matcher's backtracking short ("#.#" means the same as "#").
    words: list[str] = []
    for word in split_words(pattern):
        if word == _HASH and words and words[-1] == _HASH:
            continue
        words.append(word)
    return tuple(words)


def match_words(pattern: Sequence[str], key: Sequence[str]) -> bool:
    """Match pattern words against key words (``#`` zero or more words, ``*`` exactly one).

    This is glob matching over words: walk both sequences, remember the last ``#`` and, on a
    mismatch, let that ``#`` swallow one more key word. Linear for the usual patterns with
    a single ``#``, O(len(pattern) * len(key)) at worst, with no recursion.

    Args:
        pattern: the words of a binding pattern.
        key: the words of a routing key.

    Returns:
        True when every key word is consumed and only ``#`` words are left in the pattern.
    """
    p = k = 0
    hash_at = -1  # index of the last "#" seen in the pattern
    hash_key = 0  # key index that "#" has swallowed up to
    while k < len(key):
        if p < len(pattern) and pattern[p] == _HASH:
            hash_at, hash_key = p, k
            p += 1
        elif p < len(pattern) and (pattern[p] == _STAR or pattern[p] == key[k]):
            p += 1
            k += 1
        elif hash_at >= 0:
            hash_key += 1
            p, k = hash_at + 1, hash_key
        else:
            return False
    while p < len(pattern) and pattern[p] == _HASH:
        p += 1
    return p == len(pattern)
