"""Topic matching and key validation (``shared.bus.routing``), and topology assembly
(``shared.bus.topology``) whose checks build on them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bus.abc import TopologyError
from shared.bus.routing import (
    InvalidRoutingKey,
    split_words,
    topic_matches,
    validate_binding_key,
    validate_routing_key,
)
from shared.bus.topology import (
    BASE_TOPOLOGY,
    EVENTS_EXCHANGE,
    NOTIFY_EXCHANGE,
    UNROUTED_EXCHANGE,
    UNROUTED_QUEUE,
    Binding,
    ExchangeSpec,
    QueueSpec,
    Topology,
)

# The binding table RabbitMQ's own topic-exchange test suite uses, with its expected matches:
# if we agree with the broker on all of these, services behave the same on either bus.
RABBIT_BINDINGS = {
    "t1": "a.b.c",
    "t2": "a.*.c",
    "t3": "a.#.b",
    "t4": "a.b.b.c",
    "t5": "#",
    "t6": "#.#",
    "t7": "#.b",
    "t8": "*.*",
    "t9": "a.*",
    "t10": "*.b.c",
    "t11": "a.#",
    "t12": "a.#.#",
    "t13": "b.b.c",
    "t14": "a.b.b",
    "t15": "a.b",
    "t16": "b.c",
    "t17": "",
    "t18": "*.*.*",
    "t19": "vodka.martini",
    "t20": "a.b.c",
    "t21": "*.#",
    "t22": "#.*.#",
    "t23": "*.#.#",
    "t24": "#.#.#",
    "t25": "*",
    "t26": "#.b.#",
}
_ALWAYS = {"t5", "t6", "t21", "t22", "t23", "t24"}  # match any key of at least one word
RABBIT_EXPECTED = {
    "a.b.c": _ALWAYS | {"t1", "t2", "t10", "t11", "t12", "t18", "t20", "t26"},
    "a.b": _ALWAYS | {"t3", "t7", "t8", "t9", "t11", "t12", "t15", "t26"},
    "a.b.b": _ALWAYS | {"t3", "t7", "t11", "t12", "t14", "t18", "t26"},
    "": {"t5", "t6", "t17", "t24"},
    "b.c.c": _ALWAYS | {"t18", "t26"},
    "a.a.a.a.a": _ALWAYS | {"t11", "t12"},
    "vodka.gin": _ALWAYS | {"t8"},
    "vodka.martini": _ALWAYS | {"t8", "t19"},
    "b.b.c": _ALWAYS | {"t10", "t13", "t18", "t26"},
    "nothing.here.at.all": _ALWAYS,
    "oneword": _ALWAYS | {"t25"},
}


@pytest.mark.parametrize("routing_key", sorted(RABBIT_EXPECTED))
def test_topic_matching_agrees_with_rabbitmq(routing_key: str) -> None:
    """The in-process bus must route exactly as the broker does in production."""
    matched = {
        tag for tag, pattern in RABBIT_BINDINGS.items() if topic_matches(pattern, routing_key)
    }

    assert matched == RABBIT_EXPECTED[routing_key]


@pytest.mark.parametrize(
    ("pattern", "routing_key", "expected"),
    [
        ("#", "", True),
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("*", "", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.#", "ab", False),
        ("a.#", "b.a", False),
        ("#.b", "b", True),
        ("#.b", "a.b", True),
        ("#.b", "a.x.b", True),
        ("#.b", "a.bb", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.b.c", False),
        ("a.#.b", "a.b.b", True),
        ("*.*", "a.b", True),
        ("*.*", "a", False),
        ("*.*", "a.b.c", False),
        ("#.*", "", False),
        ("#.*", "a.b", True),
        # Empty words are words: "a." is ("a", ""), "." is ("", ""), "" has no words.
        ("a.*", "a.", True),
        ("*.*", ".", True),
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        ("a.b", "a..b", False),
        ("", "", True),
        ("", "a", False),
        # Wildcards in a routing key are ordinary words.
        ("a.b", "a.*", False),
        ("a.*", "a.*", True),
        ("command.*", "command.create_auth", True),
        ("data.message.*", "data.message.text", True),
        ("data.#", "data", True),
    ],
)
def test_topic_matches_edge_cases(pattern: str, routing_key: str, expected: bool) -> None:
    """``*`` is exactly one word, ``#`` zero or more, and empty words count as words."""
    assert topic_matches(pattern, routing_key) is expected


def _reference_match(pattern: list[str], key: list[str]) -> bool:
    # The definition, written as plainly as possible (exponential, fine for small inputs).
    if not pattern:
        return not key
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return _reference_match(rest, key) or (bool(key) and _reference_match(pattern, key[1:]))
    return bool(key) and head in ("*", key[0]) and _reference_match(rest, key[1:])


_key_words = st.lists(st.sampled_from(["a", "b", ""]), max_size=6)
_pattern_words = st.lists(st.sampled_from(["a", "b", "", "*", "#"]), max_size=6)


@settings(database=None, max_examples=500)
@given(pattern=_pattern_words, key=_key_words)
def test_topic_matches_follows_the_definition(pattern: list[str], key: list[str]) -> None:
    """The fast matcher agrees with the recursive definition on arbitrary inputs."""
    pattern_text, key_text = ".".join(pattern), ".".join(key)

    expected = _reference_match(list(split_words(pattern_text)), list(split_words(key_text)))

    assert topic_matches(pattern_text, key_text) is expected


def test_split_words_treats_the_empty_key_as_no_words() -> None:
    """RabbitMQ splits "" into zero words, so ``#`` matches it and ``*`` does not."""
    assert split_words("") == ()
    assert split_words(".") == ("", "")
    assert split_words("a.b") == ("a", "b")


def test_routing_key_longer_than_255_bytes_is_invalid() -> None:
    """AMQP carries keys as short strings; the limit is in bytes, not characters."""
    validate_routing_key("a" * 255)
    validate_routing_key("*.#.any-thing")
    with pytest.raises(InvalidRoutingKey):
        validate_routing_key("a" * 256)
    with pytest.raises(InvalidRoutingKey):
        validate_routing_key("企" * 86)  # 258 bytes in UTF-8


@pytest.mark.parametrize("pattern", ["a*", "a.b#", "#a.b", "a.*b.c", "**", "##"])
def test_topic_binding_with_wildcard_inside_a_word_is_invalid(pattern: str) -> None:
    """RabbitMQ would take ``a*`` literally, which is never what the author meant."""
    with pytest.raises(InvalidRoutingKey):
        validate_binding_key(pattern, topic=True)


@pytest.mark.parametrize("pattern", ["", "#", "*", "a.*.#", "command.*", "a..b", "#.b.#"])
def test_well_formed_topic_binding_is_valid(pattern: str) -> None:
    """Whole-word wildcards and empty words are legitimate patterns."""
    validate_binding_key(pattern, topic=True)


def test_direct_binding_may_contain_wildcard_characters() -> None:
    """On a direct exchange ``*`` is just a character of the exact key."""
    validate_binding_key("a*", topic=False)


# -- topology --------------------------------------------------------------------------------


def test_base_topology_is_complete_and_keeps_unrouted_events() -> None:
    """Events nobody consumes yet fall through to a bounded queue instead of failing."""
    BASE_TOPOLOGY.validate()

    events = BASE_TOPOLOGY.exchange(EVENTS_EXCHANGE)
    assert (events.kind, events.durable, events.alternate_exchange) == (
        "topic",
        True,
        UNROUTED_EXCHANGE,
    )
    assert BASE_TOPOLOGY.exchange(NOTIFY_EXCHANGE).kind == "direct"
    assert BASE_TOPOLOGY.exchange(UNROUTED_EXCHANGE).kind == "fanout"
    [unrouted] = BASE_TOPOLOGY.queues
    assert unrouted.name == UNROUTED_QUEUE
    assert unrouted.bindings == (Binding(UNROUTED_EXCHANGE, ""),)
    assert (unrouted.max_length, unrouted.dead_letter_queue) == (10_000, None)


def test_merged_adds_service_queues_and_keeps_identical_specs_once() -> None:
    """Services extend the base topology; declaring a shared spec twice is harmless."""
    queue = QueueSpec("svc.events", bindings=(Binding(EVENTS_EXCHANGE, "auth.*"),))
    service = Topology(queues=(queue,))

    merged = BASE_TOPOLOGY.merged(service, service, BASE_TOPOLOGY)

    merged.validate()
    assert merged.exchanges == BASE_TOPOLOGY.exchanges
    assert [q.name for q in merged.queues] == [UNROUTED_QUEUE, "svc.events"]
    assert queue.dead_letter_queue == "svc.events.dead"


def test_merged_refuses_one_name_with_two_different_specs() -> None:
    """RabbitMQ refuses to redeclare with other arguments; we fail earlier, at assembly."""
    other = Topology(exchanges=(ExchangeSpec(EVENTS_EXCHANGE, "direct"),))

    with pytest.raises(TopologyError):
        BASE_TOPOLOGY.merged(other)


def test_topology_refuses_duplicate_names() -> None:
    """Two queues under one name would silently share messages."""
    with pytest.raises(TopologyError):
        Topology(queues=(QueueSpec("q"), QueueSpec("q", max_length=1)))


@pytest.mark.parametrize(
    "topology",
    [
        Topology(queues=(QueueSpec("q", bindings=(Binding("missing", "x"),)),)),
        Topology(exchanges=(ExchangeSpec("x", "topic", alternate_exchange="missing"),)),
        Topology(
            exchanges=(ExchangeSpec("x", "topic"),),
            queues=(QueueSpec("q", bindings=(Binding("x", "a*"),)),),
        ),
        Topology(queues=(QueueSpec("q"), QueueSpec("q.dead"))),
        Topology(queues=(QueueSpec("q", durable=False),)),
        Topology(queues=(QueueSpec("q", max_length=-1),)),
        Topology(exchanges=(ExchangeSpec("", "direct"),)),
    ],
    ids=[
        "binding-to-undeclared-exchange",
        "undeclared-alternate-exchange",
        "malformed-topic-pattern",
        "clash-with-dead-letter-queue",
        "non-durable-quorum-queue",
        "negative-max-length",
        "redeclared-default-exchange",
    ],
)
def test_validate_refuses_an_inconsistent_topology(topology: Topology) -> None:
    """Wiring mistakes stop the service at start rather than losing messages later."""
    with pytest.raises(TopologyError):
        topology.validate()
