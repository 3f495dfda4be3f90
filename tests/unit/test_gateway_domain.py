"""Pure gateway rules: parameters, receive-id policy, replay cache, event ids."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.callbacks.processor import (
    CallbackParams,
    CallbackProcessor,
    ReceiveIdPolicy,
)
from gateway.replay import ReplayCache
from shared.contracts import EventEnvelope
from shared.wecom.crypto import CallbackCipher
from shared.wecom.errors import (
    MissingParameterError,
    ReceiveIdError,
    SignatureError,
    StaleTimestampError,
)
from shared.wecom.events import normalize_callback
from shared.wecom.sealing import seal_callback
from shared.wecom.xml import parse_xml

KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TOKEN = "QDG6eK"
SUITE = "wwsuite"
NOW = 1_700_000_000
TICKET_XML = (
    b"<xml><SuiteId><![CDATA[wwsuite]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType>"
    b"<TimeStamp>1700000000</TimeStamp><SuiteTicket><![CDATA[t1]]></SuiteTicket></xml>"
)


def processor(policy: ReceiveIdPolicy | None = None, window: int = 600) -> CallbackProcessor:
    return CallbackProcessor(
        token=TOKEN,
        cipher=CallbackCipher(KEY),
        policy=policy
        or ReceiveIdPolicy.from_setting(None, suite_id=SUITE, provider_corp_id="wwprov"),
        suite_id=SUITE,
        timestamp_window_s=window,
        max_body_bytes=65536,
    )


def test_params_require_all_three_values() -> None:
    """A callback without signature, timestamp or nonce is malformed."""
    full = {"msg_signature": "a" * 40, "timestamp": "1", "nonce": "n"}
    assert CallbackParams.from_query(full).nonce == "n"
    for name in full:
        with pytest.raises(MissingParameterError):
            CallbackParams.from_query({k: v for k, v in full.items() if k != name})


@pytest.mark.parametrize("timestamp", ["-1", "1.5", "abc", "١٢٣", "9" * 200])
def test_params_reject_non_integer_timestamps(timestamp: str) -> None:
    """Only whole ASCII seconds are a timestamp."""
    with pytest.raises(MissingParameterError):
        CallbackParams.from_query({"msg_signature": "a", "timestamp": timestamp, "nonce": "n"})


def test_default_policy_accepts_empty_suite_and_provider_ids() -> None:
    """The individual-developer empty id, the SuiteID and the provider CorpID pass."""
    policy = ReceiveIdPolicy.from_setting(None, suite_id=SUITE, provider_corp_id="wwprov")
    assert policy.check("command", "", None, verification=False) == "empty"
    assert policy.check("command", SUITE, None, verification=False) == "suite_id"
    assert policy.check("data", "wwprov", None, verification=False) == "provider_corp_id"


def test_default_policy_accepts_message_corp_only_on_data_route() -> None:
    """The data URL may carry the CorpID the message names; the command URL may not."""
    policy = ReceiveIdPolicy.from_setting(None, suite_id=SUITE, provider_corp_id=None)
    assert policy.check("data", "wwcorp", "wwcorp", verification=False) == "message_corp_id"
    with pytest.raises(ReceiveIdError):
        policy.check("command", "wwcorp", "wwcorp", verification=False)
    with pytest.raises(ReceiveIdError):
        policy.check("data", "wwother", "wwcorp", verification=False)


def test_default_policy_is_lenient_on_verification_only() -> None:
    """An unknown id never blocks saving the URL under the default policy (open question)."""
    policy = ReceiveIdPolicy.from_setting(None, suite_id=SUITE, provider_corp_id=None)
    assert policy.check("command", "wwunknown", None, verification=True) == "unlisted"
    with pytest.raises(ReceiveIdError):
        policy.check("command", "wwunknown", None, verification=False)


def test_explicit_policy_is_exact_and_enforced_on_verification() -> None:
    """WECOM_RECEIVE_IDS replaces the default set, '-' is the empty id."""
    policy = ReceiveIdPolicy.from_setting("-, wwx", suite_id=SUITE, provider_corp_id=None)
    assert policy.check("command", "", None, verification=True) == "empty"
    assert policy.check("command", "wwx", None, verification=False) == "listed"
    with pytest.raises(ReceiveIdError):
        policy.check("command", SUITE, None, verification=True)
    with pytest.raises(ReceiveIdError):
        policy.check("data", "wwcorp", "wwcorp", verification=False)


def test_explicit_policy_tokens_for_message_corp_and_any() -> None:
    """'@corp' admits the data message's CorpID; '*' admits anything."""
    corp = ReceiveIdPolicy.from_setting("@corp", suite_id=SUITE, provider_corp_id=None)
    assert corp.check("data", "wwc", "wwc", verification=False) == "message_corp_id"
    with pytest.raises(ReceiveIdError):
        corp.check("data", "", "wwc", verification=False)
    anything = ReceiveIdPolicy.from_setting("*", suite_id=SUITE, provider_corp_id=None)
    assert anything.check("command", "whatever", None, verification=False) == "unlisted"


def test_replay_cache_remembers_for_ttl_then_forgets() -> None:
    """An id is suppressed within the TTL and free again after it."""
    cache = ReplayCache(ttl_s=10, max_entries=100)
    cache.add(b"a", now=0)
    assert cache.seen(b"a", now=9.9)
    assert not cache.seen(b"a", now=10.1)
    assert len(cache) == 0


def test_replay_cache_evicts_oldest_beyond_capacity() -> None:
    """Memory stays bounded: the oldest id goes first."""
    cache = ReplayCache(ttl_s=100, max_entries=3)
    for index, key in enumerate([b"a", b"b", b"c", b"d"]):
        cache.add(key, now=index)
    assert len(cache) == 3
    assert not cache.seen(b"a", now=5)
    assert cache.seen(b"d", now=5)


def test_replay_cache_rounds_deadlines_up_never_down() -> None:
    """Deadlines are kept per whole second: an id may live up to a second longer, never less."""
    cache = ReplayCache(ttl_s=10, max_entries=100)
    cache.add(b"a", now=0.2)
    assert cache.seen(b"a", now=10.9)
    assert not cache.seen(b"a", now=11.0)


def test_replay_cache_re_add_restarts_the_ttl() -> None:
    """Seeing a key again restarts its ttl; expired keys are forgotten and leave the cache."""
    cache = ReplayCache(ttl_s=10, max_entries=100)
    cache.add(b"a", now=0)
    cache.add(b"b", now=1)
    cache.add(b"a", now=5)
    assert len(cache) == 2
    assert not cache.seen(b"b", now=11)
    assert cache.seen(b"a", now=14.5)
    assert not cache.seen(b"a", now=15)
    assert len(cache) == 0


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([b"a", b"b", b"c", b"d", b"e"]), st.floats(0, 4)),
        max_size=40,
    ),
    capacity=st.integers(1, 6),
)
def test_replay_cache_matches_a_reference_model(
    steps: list[tuple[bytes, float]], capacity: int
) -> None:
    """Against a plain dict of deadlines: same answers, same size, whatever the sequence."""
    ttl = 3.5
    cache = ReplayCache(ttl_s=ttl, max_entries=capacity)
    model: dict[bytes, float] = {}  # id -> deadline, in insertion order
    now = 0.0
    for key, advance in steps:
        now += advance
        model = {k: d for k, d in model.items() if d > now}
        assert cache.seen(key, now) == (key in model)
        model.pop(key, None)
        model[key] = math.ceil(now + ttl)
        while len(model) > capacity:
            del model[next(iter(model))]
        cache.add(key, now)
        assert len(cache) == len(model)


def test_retry_with_new_ciphertext_gets_the_same_event_id() -> None:
    """The id hashes receive id + plaintext, not the ciphertext or nonce."""
    cipher = CallbackCipher(KEY)
    first = seal_callback(cipher, TOKEN, TICKET_XML, "", timestamp=NOW, nonce="1")
    retry = seal_callback(cipher, TOKEN, TICKET_XML, "", timestamp=NOW + 5, nonce="2")
    assert first.body != retry.body
    proc = processor()
    a = proc.process("command", CallbackParams.from_query(first.query), first.body, now=NOW)
    b = proc.process("command", CallbackParams.from_query(retry.query), retry.body, now=NOW + 5)
    assert a.envelope.id == b.envelope.id
    assert a.envelope.type == "command.suite_ticket"
    assert a.envelope.suite_id == SUITE


def test_signature_is_checked_before_the_timestamp_window() -> None:
    """A forged request learns nothing about the window; a signed stale one is refused."""
    cipher = CallbackCipher(KEY)
    sealed = seal_callback(cipher, TOKEN, TICKET_XML, "", timestamp=NOW - 601)
    params = CallbackParams.from_query(sealed.query)
    with pytest.raises(StaleTimestampError):
        processor().process("command", params, sealed.body, now=NOW)
    forged = CallbackParams(params.signature[::-1], params.timestamp, params.nonce)
    with pytest.raises(SignatureError):
        processor().process("command", forged, sealed.body, now=NOW)


_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "callbacks"
_MANIFEST: list[dict[str, Any]] = json.loads((_FIXTURES / "manifest.json").read_text("utf-8"))


@pytest.mark.parametrize("entry", _MANIFEST, ids=[entry["file"] for entry in _MANIFEST])
def test_published_json_is_exactly_the_envelope_models_json(entry: dict[str, Any]) -> None:
    """The processor writes the envelope's JSON itself; it must be byte for byte what
    EventEnvelope(...).model_dump_json() gives for the same callback, fixture by fixture."""
    cipher = CallbackCipher(KEY)
    plaintext = (_FIXTURES / entry["file"]).read_bytes()
    sealed = seal_callback(cipher, TOKEN, plaintext, "", timestamp=NOW, nonce="n")
    accepted = processor().process(
        entry["route"], CallbackParams.from_query(sealed.query), sealed.body, now=NOW + 0.25
    )
    event = normalize_callback(
        entry["route"], parse_xml(plaintext), received_at=datetime.fromtimestamp(NOW + 0.25, UTC)
    )
    expected = EventEnvelope(
        id=hashlib.sha256(plaintext).hexdigest(),
        type=event.type,
        suite_id=event.suite_id or SUITE,
        corp_id=event.corp_id,
        occurred_at=event.occurred_at,
        received_at=datetime.fromtimestamp(NOW + 0.25, UTC),
        payload=event.payload,
        raw=event.raw,
    )
    assert accepted.body == expected.model_dump_json().encode()
    assert accepted.envelope == expected
    assert (accepted.event_id, accepted.event_type) == (expected.id, expected.type)
    assert accepted.received_at == expected.received_at
    assert accepted.dedup_key == hashlib.sha256(plaintext).digest()[:16]


def test_nan_and_infinite_payload_floats_are_published_as_null_like_the_model() -> None:
    """pydantic reads "nan", "-inf" and "1e400" as floats; the model writes them as null,
    and so must the processor: strict JSON parsers refuse a bare NaN or Infinity."""
    plaintext = (
        b"<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[u]]>"
        b"</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]>"
        b"</MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>nan</Latitude>"
        b"<Longitude>-inf</Longitude><Precision>1e400</Precision><AgentID>1</AgentID></xml>"
    )
    sealed = seal_callback(CallbackCipher(KEY), TOKEN, plaintext, "", timestamp=NOW, nonce="n")
    accepted = processor().process(
        "data", CallbackParams.from_query(sealed.query), sealed.body, now=NOW
    )
    assert accepted.event_type == "data.event.location"
    payload = json.loads(accepted.body)["payload"]
    assert (payload["latitude"], payload["longitude"], payload["precision"]) == (None, None, None)
    assert b"NaN" not in accepted.body
    assert b"Infinity" not in accepted.body
    assert accepted.body == accepted.envelope.model_dump_json().encode()
