"""The gateway over real HTTP: verification, every callback fixture, repeats, bad input."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from Crypto.Cipher import AES
from structlog.testing import capture_logs

from gateway.settings import GatewaySettings
from shared.bus.abc import Bus, Consumer, Handler, Message, PublishTimeout, RpcHandler
from shared.wecom.crypto import CallbackCipher, compute_signature
from shared.wecom.sealing import SealedCallback, seal_callback, seal_verification
from tests.support.gateway import NOW, Clock, GatewayHarness, serve_gateway

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "callbacks"
MANIFEST: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text("utf-8"))
V1_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TICKET = (
    b"<xml><SuiteId><![CDATA[wwsandbox0000000001]]></SuiteId>"
    b"<InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>1700000000</TimeStamp>"
    b"<SuiteTicket><![CDATA[ticket-1]]></SuiteTicket></xml>"
)


def text_message(msg_id: str, sender: str = "zhangsan", created: int = NOW) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[wwcorp1]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>"
        f"<MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>"
    ).encode()


def event(name: str, sender: str = "zhangsan", created: int = NOW) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[wwcorp1]]></ToUserName>"
        f"<FromUserName><![CDATA[{sender}]]></FromUserName><CreateTime>{created}</CreateTime>"
        f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{name}]]></Event>"
        f"<AgentID>1000002</AgentID></xml>"
    ).encode()


@pytest.fixture
async def gw() -> AsyncIterator[GatewayHarness]:
    async with serve_gateway() as harness:
        yield harness


# --- URL verification ----------------------------------------------------------------------


@pytest.mark.parametrize("route", ["command", "data"])
async def test_url_verification_answers_the_plain_echostr(gw: GatewayHarness, route: str) -> None:
    """Both URLs answer WeCom's GET with exactly the decrypted echostr, as text/plain."""
    query = seal_verification(gw.cipher, gw.token, "1616140317555161061", "", timestamp=NOW)
    status, body, content_type = await gw.get(route, query)
    assert (status, body, content_type) == (200, "1616140317555161061", "text/plain")
    assert gw.published() == 0


async def test_official_verification_vector_v2_over_http() -> None:
    """Protocol doc V2: Tencent's sample GET verifies with our code, byte for byte."""
    settings = GatewaySettings(
        wecom_suite_id="wx5823bf96d3bd56c7",
        wecom_suite_secret="s",
        wecom_token="QDG6eK",
        wecom_encoding_aes_key=V1_KEY,
    )
    async with serve_gateway(settings, clock=Clock(wall=1409659589)) as gw:
        url = gw.url(
            "/wecom/data?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
            "&timestamp=1409659589&nonce=263014780&echostr=P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3"
            "Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
        )
        async with gw.session.get(url) as response:
            assert response.status == 200
            assert await response.read() == b"1616140317555161061"


async def test_unencoded_plus_in_echostr_still_verifies(gw: GatewayHarness) -> None:
    """A literal '+' in the raw query (decoded as a space) is read back as '+'."""
    for _ in range(50):  # find an echostr with a '+' in it
        query = seal_verification(gw.cipher, gw.token, "123456789", "", timestamp=NOW)
        if "+" in query["echostr"]:
            break
    else:
        pytest.fail("no echostr with '+' generated")
    raw = "&".join(f"{k}={v}" for k, v in query.items())  # '+' left unencoded on purpose
    async with gw.session.get(gw.url("/wecom/command") + "?" + raw) as response:
        assert response.status == 200
        assert await response.text() == "123456789"


async def test_explicit_receive_ids_are_enforced_on_verification() -> None:
    """With WECOM_RECEIVE_IDS set, a verification with another id is refused (400)."""
    async with serve_gateway(GatewaySettings(wecom_receive_ids="-")) as gw:
        good = seal_verification(gw.cipher, gw.token, "42", "", timestamp=NOW)
        bad = seal_verification(gw.cipher, gw.token, "42", "wwother", timestamp=NOW)
        assert (await gw.get("command", good))[0] == 200
        status, body, _ = await gw.get("command", bad)
        assert status == 400
        assert json.loads(body)["error"]["code"] == "receive_id_rejected"


# --- every callback fixture ----------------------------------------------------------------


@pytest.mark.parametrize("case", MANIFEST, ids=[case["file"] for case in MANIFEST])
async def test_every_callback_fixture_becomes_its_event(
    gw: GatewayHarness, case: dict[str, Any]
) -> None:
    """Each InfoType/MsgType/Event of the protocol doc is published as the right event."""
    plaintext = (FIXTURES / case["file"]).read_bytes()
    status, body = await gw.post(case["route"], gw.seal(plaintext))
    assert status == 200
    assert body == ("success" if case["route"] == "command" else "")
    [published] = await gw.events(1)
    assert published["type"] == case["type"]
    assert published["corp_id"] == case["corp_id"]
    assert published["schema"] == 1
    for key, expected in case["payload"].items():
        assert published["payload"][key] == expected, key
    assert published["raw"]
    assert len(published["id"]) == 64


async def test_envelope_fields_and_message_properties(gw: GatewayHarness) -> None:
    """The envelope carries suite, corp, times and the sha256 id; message_id equals it."""
    status, _ = await gw.post("data", gw.seal(text_message("1"), "wwcorp1"))
    assert status == 200
    [published] = await gw.events(1)
    assert published["suite_id"] == gw.settings.suite_id
    assert published["corp_id"] == "wwcorp1"
    assert published["occurred_at"].startswith("2023-11-14T22:13:20")
    assert published["payload"]["content"] == "hi"
    assert published["raw"]["MsgId"] == "1"


# --- repeats -------------------------------------------------------------------------------


async def test_wecom_retry_with_new_ciphertext_is_suppressed(gw: GatewayHarness) -> None:
    """Same plaintext, new nonce and ciphertext: answered success, published once."""
    first = gw.seal(TICKET)
    gw.clock.advance(5)
    retry = gw.seal(TICKET)
    assert first.body != retry.body
    assert (await gw.post("command", first))[0] == 200
    assert (await gw.post("command", retry)) == (200, "success")
    assert gw.published() == 1


async def test_exact_replay_within_window_is_suppressed(gw: GatewayHarness) -> None:
    """A byte-identical replay is answered but not published again."""
    sealed = gw.seal(TICKET)
    assert (await gw.post("command", sealed))[0] == 200
    gw.clock.advance(300)
    assert (await gw.post("command", sealed))[0] == 200
    assert gw.published() == 1


async def test_concurrent_retries_publish_once(gw: GatewayHarness) -> None:
    """Retries arriving while the first is still being confirmed wait for it."""
    sealed = [gw.seal(TICKET) for _ in range(10)]
    results = await asyncio.gather(*(gw.post("command", s) for s in sealed))
    assert all(status == 200 for status, _ in results)
    assert gw.published() == 1


async def test_a_burst_mixing_good_and_forged_callbacks_gets_each_its_own_answer(
    gw: GatewayHarness,
) -> None:
    """Callbacks arriving together are processed as one batch: each still gets its own
    answer, the forged ones publish nothing, and every good one publishes its own event."""
    good = [gw.seal(text_message(str(100 + n), sender=f"m{n}")) for n in range(20)]
    forged = []
    for n in range(20):
        sealed = gw.seal(text_message(str(500 + n)))
        query = dict(sealed.query, msg_signature="0" * 40)
        forged.append(SealedCallback(query=query, body=sealed.body))
    burst = [item for pair in zip(good, forged, strict=True) for item in pair]
    answers = await asyncio.gather(*(gw.post("data", sealed) for sealed in burst))
    assert [status for status, _ in answers] == [200, 403] * 20
    got = await gw.events(20)
    assert sorted(e["raw"]["MsgId"] for e in got) == [str(100 + n) for n in range(20)]
    assert gw.published() == 0  # all twenty taken off the capture queue, nothing else stored


async def test_distinct_events_sharing_sender_and_second_both_pass(gw: GatewayHarness) -> None:
    """Field-based de-dup (FromUserName + CreateTime) would drop one of these; we do not."""
    await gw.post("data", gw.seal(event("enter_agent"), "wwcorp1"))
    await gw.post("data", gw.seal(event("subscribe"), "wwcorp1"))
    got = await gw.events(2)
    assert sorted(e["type"] for e in got) == ["data.event.enter_agent", "data.event.subscribe"]


async def test_distinct_messages_sharing_sender_and_second_both_pass(gw: GatewayHarness) -> None:
    """Two messages in the same second from one member differ by MsgId and both publish."""
    await gw.post("data", gw.seal(text_message("111"), "wwcorp1"))
    await gw.post("data", gw.seal(text_message("112"), "wwcorp1"))
    assert gw.published() == 2


async def test_repeat_after_ttl_is_published_again(gw: GatewayHarness) -> None:
    """Suppression is bounded by the replay TTL; WeCom never retries that late."""
    await gw.post("command", gw.seal(TICKET))
    gw.clock.advance(gw.settings.callback_replay_ttl_s + 1)
    await gw.post("command", gw.seal(TICKET))
    assert gw.published() == 2


# --- bus failures --------------------------------------------------------------------------


@dataclass
class FlakyBus:
    """A bus whose publishes time out while ``failing`` is set."""

    failing: bool = True
    published: int = 0

    @property
    def is_ready(self) -> bool:
        return not self.failing

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def dead_letter_counts(self) -> dict[str, int]:
        return {}

    async def publish(
        self, exchange: str, routing_key: str, message: Message, *, timeout: float = 5.0
    ) -> None:
        if self.failing:
            raise PublishTimeout()
        self.published += 1

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> Consumer:
        raise NotImplementedError

    async def call(self, queue: str, request: bytes | Message, *, timeout: float) -> Message:
        raise NotImplementedError

    async def serve(self, queue: str, handler: RpcHandler, *, prefetch: int = 16) -> Consumer:
        raise NotImplementedError


async def test_unconfirmed_publish_answers_503_and_the_retry_publishes() -> None:
    """No confirm → 503 so WeCom retries; the failure must not suppress that retry."""
    bus = FlakyBus()
    typed_bus: Bus = bus
    async with serve_gateway(bus=typed_bus) as gw:
        status, body = await gw.post("command", gw.seal(TICKET))
        assert status == 503
        assert json.loads(body)["error"]["code"] == "bus_publish_timeout"
        async with gw.session.get(gw.url("/readyz")) as response:
            assert response.status == 503
        bus.failing = False
        assert await gw.post("command", gw.seal(TICKET)) == (200, "success")
        assert bus.published == 1


# --- health and metrics --------------------------------------------------------------------


async def test_health_readiness_and_metrics(gw: GatewayHarness) -> None:
    """/healthz answers, /readyz reports the bus, /metrics counts callbacks by outcome."""
    await gw.post("command", gw.seal(TICKET))
    await gw.post("command", gw.seal(TICKET))
    bad = gw.seal(TICKET)
    bad.query["msg_signature"] = "0" * 40
    await gw.post("command", bad)
    async with gw.session.get(gw.url("/healthz")) as response:
        assert response.status == 200
    async with gw.session.get(gw.url("/readyz")) as response:
        assert response.status == 200
        assert (await response.json())["checks"] == {"bus": True}
    async with gw.session.get(gw.url("/metrics")) as response:
        text = await response.text()
    assert 'wecom_callbacks_total{outcome="accepted",route="command"} 1.0' in text
    assert 'wecom_callbacks_total{outcome="duplicate",route="command"} 1.0' in text
    assert 'wecom_callbacks_total{outcome="signature_invalid",route="command"} 1.0' in text
    assert "wecom_callback_duration_seconds_bucket" in text
    assert "wecom_bus_publish_duration_seconds_count 1.0" in text
    assert 'wecom_callback_receive_ids_total{kind="empty",route="command"}' in text


async def test_readiness_is_false_before_the_bus_starts() -> None:
    """A gateway whose bus is not connected reports not ready."""
    async with (
        serve_gateway(start_bus=False) as gw,
        gw.session.get(gw.url("/readyz")) as response,
    ):
        assert response.status == 503


# --- bad input -----------------------------------------------------------------------------


def raw_ciphertext(plain: bytes, key: str = "") -> str:
    """AES-CBC over exactly ``plain`` (a multiple of 16 bytes), no padding applied."""
    aes_key = base64.b64decode((key or _sandbox_key()) + "=")
    return base64.b64encode(AES.new(aes_key, AES.MODE_CBC, aes_key[:16]).encrypt(plain)).decode()


def _sandbox_key() -> str:
    return GatewaySettings().encoding_aes_key.get_secret_value()


def signed(gw: GatewayHarness, encrypted: str, *, timestamp: int = NOW) -> SealedCallback:
    """An outer envelope around ``encrypted`` with a valid signature."""
    query = {
        "msg_signature": compute_signature(gw.token, str(timestamp), "77", encrypted),
        "timestamp": str(timestamp),
        "nonce": "77",
    }
    return SealedCallback(query, f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode())


def signed_body(gw: GatewayHarness, body: bytes) -> SealedCallback:
    """A raw body with a valid-looking query (its signature cannot match: no Encrypt)."""
    return SealedCallback({"msg_signature": "0" * 40, "timestamp": str(NOW), "nonce": "1"}, body)


def layout(
    msg: bytes, receive_id: bytes = b"", *, length: int | None = None, pad: int = 0
) -> bytes:
    """A plaintext layout with a chosen length field and padding byte (0 = correct)."""
    body = b"r" * 16 + struct.pack(">I", len(msg) if length is None else length) + msg + receive_id
    n = 32 - len(body) % 32
    return body + bytes([pad or n]) * n


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
    b'<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">'
    b'<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">'
    b'<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">'
    b'<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">'
    b'<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">'
    b'<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">'
    b"]><xml><Encrypt>&lol9;</Encrypt></xml>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<xml><Encrypt>&e;</Encrypt></xml>"
)


@dataclass(frozen=True)
class Bad:
    name: str
    status: int
    code: str
    build: Callable[[GatewayHarness], SealedCallback]
    route: str = "command"


def _drop(name: str) -> Callable[[GatewayHarness], SealedCallback]:
    def build(gw: GatewayHarness) -> SealedCallback:
        sealed = gw.seal(TICKET)
        return SealedCallback({k: v for k, v in sealed.query.items() if k != name}, sealed.body)

    return build


def _with_query(**changes: str) -> Callable[[GatewayHarness], SealedCallback]:
    def build(gw: GatewayHarness) -> SealedCallback:
        sealed = gw.seal(TICKET)
        return SealedCallback({**sealed.query, **changes}, sealed.body)

    return build


def _inner(plaintext: bytes, receive_id: str = "") -> Callable[[GatewayHarness], SealedCallback]:
    return lambda gw: gw.seal(plaintext, receive_id)


def _encrypted(raw: bytes) -> Callable[[GatewayHarness], SealedCallback]:
    return lambda gw: signed(gw, raw_ciphertext(raw))


def _flip_ciphertext(gw: GatewayHarness) -> SealedCallback:
    sealed = gw.seal(TICKET)
    body = sealed.body.replace(b"<![CDATA[", b"<![CDATA[A", 3)
    return SealedCallback(sealed.query, body)


BAD_INPUTS = [
    Bad("missing signature", 400, "missing_parameter", _drop("msg_signature")),
    Bad("missing timestamp", 400, "missing_parameter", _drop("timestamp")),
    Bad("missing nonce", 400, "missing_parameter", _drop("nonce")),
    Bad("non-numeric timestamp", 400, "missing_parameter", _with_query(timestamp="12ab")),
    Bad("overlong nonce", 400, "missing_parameter", _with_query(nonce="1" * 500)),
    Bad("wrong signature", 403, "signature_invalid", _with_query(msg_signature="0" * 40)),
    Bad("short signature", 403, "signature_invalid", _with_query(msg_signature="abc")),
    Bad("signature for other nonce", 403, "signature_invalid", _with_query(nonce="999")),
    Bad("mutated ciphertext", 403, "signature_invalid", _flip_ciphertext),
    Bad(
        "stale timestamp",
        403,
        "timestamp_out_of_window",
        lambda gw: gw.seal(TICKET, timestamp=NOW - 601),
    ),
    Bad(
        "future timestamp",
        403,
        "timestamp_out_of_window",
        lambda gw: gw.seal(TICKET, timestamp=NOW + 601),
    ),
    Bad("bad base64", 400, "base64_invalid", lambda gw: signed(gw, "not*base64!")),
    Bad(
        "truncated ciphertext",
        400,
        "length_invalid",
        lambda gw: signed(gw, raw_ciphertext(b"x" * 32)[:-8] + "AAAA"),
    ),
    Bad("wrong padding value", 400, "padding_invalid", _encrypted(layout(TICKET, pad=33))),
    Bad("zero padding byte", 400, "padding_invalid", _encrypted(b"\x00" * 64)),
    Bad("length field too large", 400, "length_invalid", _encrypted(layout(TICKET, length=10_000))),
    Bad("wrong receive id", 400, "receive_id_rejected", _inner(TICKET, "wwsomeoneelse")),
    Bad("decrypted text not XML", 400, "xml_invalid", _inner(b"hello, not xml")),
    Bad("decrypted XML with DTD", 400, "xml_invalid", _inner(XXE)),
    Bad("decrypted not UTF-8", 400, "xml_invalid", _inner(b"<xml><A>\xff\xfe</A></xml>")),
    Bad("command without InfoType", 400, "xml_invalid", _inner(b"<xml><SuiteId>x</SuiteId></xml>")),
    Bad(
        "data without MsgType",
        400,
        "xml_invalid",
        _inner(b"<xml><ToUserName>c</ToUserName></xml>"),
        "data",
    ),
    Bad("non-XML body", 400, "xml_invalid", lambda gw: signed_body(gw, b"hello world")),
    Bad("empty body", 400, "xml_invalid", lambda gw: signed_body(gw, b"")),
    Bad("JSON body", 400, "xml_invalid", lambda gw: signed_body(gw, b'{"Encrypt": "x"}')),
    Bad("XML bomb", 400, "xml_invalid", lambda gw: signed_body(gw, BILLION_LAUGHS)),
    Bad("external entity", 400, "xml_invalid", lambda gw: signed_body(gw, XXE)),
    Bad(
        "DTD",
        400,
        "xml_invalid",
        lambda gw: signed_body(gw, b"<!DOCTYPE xml><xml><Encrypt>a</Encrypt></xml>"),
    ),
    Bad(
        "wrong root element",
        400,
        "xml_invalid",
        lambda gw: signed_body(gw, b"<root><Encrypt>a</Encrypt></root>"),
    ),
    Bad(
        "deep nesting",
        400,
        "xml_invalid",
        lambda gw: signed_body(gw, b"<xml>" + b"<a>" * 50 + b"</a>" * 50 + b"</xml>"),
    ),
    Bad(
        "missing Encrypt",
        400,
        "encrypt_missing",
        lambda gw: signed_body(gw, b"<xml><ToUserName>a</ToUserName></xml>"),
    ),
    Bad(
        "empty Encrypt",
        400,
        "encrypt_missing",
        lambda gw: signed_body(gw, b"<xml><Encrypt></Encrypt></xml>"),
    ),
    Bad(
        "huge body",
        413,
        "payload_too_large",
        lambda gw: signed_body(gw, b"<xml>" + b" " * 70_000 + b"</xml>"),
    ),
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[bad.name for bad in BAD_INPUTS])
async def test_bad_input_gets_its_4xx_and_publishes_nothing(gw: GatewayHarness, bad: Bad) -> None:
    """Each malformed or hostile callback gets its documented status and error code."""
    status, body = await gw.post(bad.route, bad.build(gw))
    assert status == bad.status, body
    assert json.loads(body)["error"]["code"] == bad.code
    assert "Traceback" not in body
    assert gw.published() == 0


async def test_chunked_oversized_body_is_413(gw: GatewayHarness) -> None:
    """A body without Content-Length is still cut off at the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"<xml>" + b" " * 8192

    sealed = gw.seal(TICKET)
    async with gw.session.post(
        gw.url("/wecom/command"), params=sealed.query, data=chunks()
    ) as response:
        assert response.status == 413
    assert gw.published() == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_wrong_method_is_405(gw: GatewayHarness, method: str) -> None:
    """Only GET and POST exist on the callback URLs."""
    async with gw.session.request(method, gw.url("/wecom/command")) as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert gw.published() == 0


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({}, 400),
        ({"msg_signature": "0" * 40, "timestamp": str(NOW), "nonce": "1", "echostr": "abc"}, 403),
        ({"msg_signature": "0" * 40, "timestamp": str(NOW), "nonce": "1"}, 400),
    ],
)
async def test_bad_verification_requests(
    gw: GatewayHarness, query: dict[str, str], status: int
) -> None:
    """Verification without parameters is 400, with a wrong signature 403."""
    assert (await gw.get("data", query))[0] == status


async def test_verification_with_stale_timestamp_is_403(gw: GatewayHarness) -> None:
    """The timestamp window applies to URL verification too."""
    query = seal_verification(gw.cipher, gw.token, "42", "", timestamp=NOW - 3600)
    assert (await gw.get("command", query))[0] == 403


async def test_verification_with_undecryptable_echostr_is_400(gw: GatewayHarness) -> None:
    """A correctly signed but malformed echostr is bad input, not a server error."""
    echostr = "QUJD"  # base64 of 3 bytes: not a whole AES block
    query = {
        "msg_signature": compute_signature(gw.token, str(NOW), "5", echostr),
        "timestamp": str(NOW),
        "nonce": "5",
        "echostr": echostr,
    }
    status, body, _ = await gw.get("command", query)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "length_invalid"


def test_bad_input_table_is_large_enough() -> None:
    """The issue asks for at least 25 distinct bad inputs."""
    assert len(BAD_INPUTS) >= 25
    assert len({bad.name for bad in BAD_INPUTS}) == len(BAD_INPUTS)


def test_sealing_matches_the_protocol_example() -> None:
    """Our sealing reproduces V1's ciphertext and signature from its random bytes."""
    cipher = CallbackCipher(V1_KEY)
    plaintext = (
        b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
        b"<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n"
        b"<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
        b"<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
    )
    sealed = seal_callback(
        cipher,
        "QDG6eK",
        plaintext,
        "wx5823bf96d3bd56c7",
        timestamp=1409659813,
        nonce="1372623149",
        random16=b"0960688932c47ef1",
    )
    assert sealed.query["msg_signature"] == "477715d11cdb4164915debcba66cb864d751f3e6"


async def test_each_receive_id_seen_is_logged_once_per_route(gw: GatewayHarness) -> None:
    """Operators learn the receive id WeCom really uses (open question) without log floods."""
    with capture_logs() as logs:
        await gw.post("data", gw.seal(text_message("1"), "wwcorp1"))
        await gw.post("data", gw.seal(text_message("2"), "wwcorp1"))
        await gw.post("command", gw.seal(TICKET, ""))
    seen = [entry for entry in logs if entry["event"] == "callback_receive_id_seen"]
    assert [(e["route"], e["receive_id"], e["receive_id_kind"]) for e in seen] == [
        ("data", "wwcorp1", "message_corp_id"),
        ("command", "", "empty"),
    ]
