"""Tests for shared.wecom.crypto: the known vectors of protocol §3, round trips, every error."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib

import pytest
from Crypto.Cipher import AES
from Crypto.Util.Padding import unpad
from defusedxml import ElementTree
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.wecom.crypto import (
    CallbackCipher,
    DecryptedMessage,
    build_passive_reply,
    compute_signature,
    jssdk_signature,
    verify_signature,
)
from shared.wecom.errors import (
    Base64Error,
    CallbackError,
    InvalidAesKeyError,
    LengthError,
    PaddingError,
    SignatureError,
)


@dataclasses.dataclass(frozen=True)
class Vector:
    """One signed, encrypted callback of protocol §3 and what it must decrypt to."""

    name: str
    token: str
    key: str
    timestamp: str
    nonce: str
    encrypted: str
    signature: str
    msg: bytes
    receive_id: bytes
    random16: bytes
    pad: int


V1_TOKEN = "QDG6eK"
V1_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
V1_RECEIVE_ID = b"wx5823bf96d3bd56c7"
V3_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
V3_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
V3_RECEIVE_ID = b"ww1436e0e65a779aee"

V1 = Vector(
    name="V1",
    token=V1_TOKEN,
    key=V1_KEY,
    timestamp="1409659813",
    nonce="1372623149",
    encrypted=(
        "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qczc"
        "dCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLj"
        "vd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMn"
        "vw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k"
        "22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
        "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
    ),
    signature="477715d11cdb4164915debcba66cb864d751f3e6",
    # The worked example really has a newline between elements, not just in the doc's layout.
    msg=(
        b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
        b"<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
        b"<CreateTime>1409659813</CreateTime>\n"
        b"<MsgType><![CDATA[text]]></MsgType>\n"
        b"<Content><![CDATA[hello]]></Content>\n"
        b"<MsgId>4561255354251345929</MsgId>\n"
        b"<AgentID>218</AgentID>\n"
        b"</xml>"
    ),
    receive_id=V1_RECEIVE_ID,
    random16=b"0960688932c47ef1",
    pad=30,
)
V2 = Vector(
    name="V2",
    token=V1_TOKEN,
    key=V1_KEY,
    timestamp="1409659589",
    nonce="263014780",
    encrypted=(
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    ),
    signature="5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    msg=b"1616140317555161061",
    receive_id=V1_RECEIVE_ID,
    random16=b"c41b64491c2468d0",
    pad=7,
)
V3 = Vector(
    name="V3",
    token=V3_TOKEN,
    key=V3_KEY,
    timestamp="1476416373",
    nonce="47744683",
    encrypted=(
        "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
    ),
    signature="012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    msg=b"1288432023552776189",
    receive_id=V3_RECEIVE_ID,
    random16=b"8908d0ff052afda0",
    pad=7,
)
V4 = Vector(
    name="V4",
    token=V3_TOKEN,
    key=V3_KEY,
    timestamp="1476422779",
    nonce="1597212914",
    encrypted=(
        "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTk"
        "AgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJP"
        "QbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7Mhm"
        "EbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/"
        "oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
    ),
    signature="0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
    msg=(
        "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
        "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
        "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
    ).encode(),
    receive_id=V3_RECEIVE_ID,
    random16=b"694ce5a83ae07fe3",
    pad=22,
)
V5 = Vector(
    name="V5",
    token=V3_TOKEN,
    key=V3_KEY,
    timestamp="1409659813",
    nonce="1372623149",
    encrypted=(
        "cjhLUX7UU4yCSelv1vz7T0zT8huF51bAMVWriNvO1FMegHrQZNrtvRxbwf0fUPsFvwqR0U0fgiJNEA5Y30F2MoI2"
        "S7vv3EjVQ68C0cjw9frBoUE2Hj0BvFp9h3u6Vbsg4lc1C8AtHdaN8orKuNKkLRLuYEL52R1J3v8olJGZRLnRdVKI"
        "ivixmX/eQpzgeExtp20jI1HxRP1AAZ6xZoILdqDPO549LO4WeG+685JRUTdiwcY5fjZlqeMxuT4PpMn1X9OWsS7N"
        "Rj06Wa5E3Tvg4twjWp39KPfOdRte6P1T4JU="
    ),
    signature="e3647471e395139e2308c1fa963f2d648a00b90e",
    # Copied byte for byte, including the sample's own typo (`: :mycreate"`): not valid JSON.
    msg=(
        b'{ "ToUserName": "wx5823bf96d3bd56c7", "FromUserName": :mycreate", '
        b'"CreateTime": 1409659813, "MsgType": "text", "Content": "hello", '
        b'"MsgId": 4561255354251345929, "AgentID": 218}'
    ),
    receive_id=V3_RECEIVE_ID,
    random16=b"dDVXRx6kn1gOT43Q",
    pad=10,
)
V7 = Vector(
    name="V7",
    token=V1_TOKEN,
    key=V1_KEY,
    timestamp="1700000000",
    nonce="abc123",
    encrypted=(
        "sKqRbbiSUnDhFHOvPjtUMRdD09ihkz7iEzK8OOcLy5oN34p+XYsnWC5r6/C/xN/1Nneyc1kNCffgVI9nkNCzql9V"
        "RpGoSI5jocxyNj4r/bZvz+G1daZP3yLOL0GqSxce"
    ),
    signature="413685d206cff41f70055e31d7bf3012e31e2369",
    msg=b"<xml><Content><![CDATA[hi]]></Content></xml>",
    receive_id=b"",
    random16=b"0123456789abcdef",
    pad=32,
)
VECTORS = (V1, V2, V3, V4, V5, V7)
BY_VECTOR = pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])

V6_TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
V6_SIGNATURE = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def open_raw(key: str, encrypted: str) -> bytes:
    """AES-decrypt without unpadding, to look at the padded plaintext layout."""
    aes_key = base64.b64decode(key + "=")
    return AES.new(aes_key, AES.MODE_CBC, iv=aes_key[:16]).decrypt(base64.b64decode(encrypted))


def seal_raw(plaintext: bytes, key: str = V1_KEY) -> str:
    """AES-encrypt an already laid-out (and maybe badly padded) plaintext."""
    aes_key = base64.b64decode(key + "=")
    sealed = AES.new(aes_key, AES.MODE_CBC, iv=aes_key[:16]).encrypt(plaintext)
    return base64.b64encode(sealed).decode()


def sorted_concat(*values: str) -> bytes:
    """What the signature actually covers: the four values sorted, joined with no separator."""
    return b"".join(sorted(v.encode() for v in values))


def open_callback(vector: Vector, timestamp: str, nonce: str, encrypted: str, sig: str) -> None:
    """The gateway's order: authenticate the ciphertext first, only then decrypt it."""
    verify_signature(vector.token, timestamp, nonce, encrypted, sig)
    CallbackCipher(vector.key).decrypt(encrypted)


# --- known vectors -------------------------------------------------------------------------


@BY_VECTOR
def test_vector_signature_recomputes(vector: Vector) -> None:
    """The signature algorithm must match Tencent's byte for byte or no callback verifies."""
    got = compute_signature(vector.token, vector.timestamp, vector.nonce, vector.encrypted)
    assert got == vector.signature


@BY_VECTOR
def test_vector_signature_verifies(vector: Vector) -> None:
    """A genuine callback must pass the constant-time check without raising."""
    verify_signature(
        vector.token, vector.timestamp, vector.nonce, vector.encrypted, vector.signature
    )


@BY_VECTOR
def test_vector_decrypts_to_stated_plaintext_and_receive_id(vector: Vector) -> None:
    """Decryption must yield the exact message bytes and the receive id that follows them."""
    opened = CallbackCipher(vector.key).decrypt(vector.encrypted)
    assert opened == DecryptedMessage(msg=vector.msg, receive_id=vector.receive_id)


@BY_VECTOR
def test_vector_plaintext_layout_matches_the_protocol(vector: Vector) -> None:
    """random(16) || msg_len || msg || receive_id || 32-byte PKCS#7 is the layout we rely on."""
    raw = open_raw(vector.key, vector.encrypted)
    assert raw[:16] == vector.random16
    assert int.from_bytes(raw[16:20], "big") == len(vector.msg)
    assert raw[-vector.pad :] == bytes([vector.pad]) * vector.pad
    assert len(raw) % 32 == 0


@BY_VECTOR
def test_vector_reencrypts_to_exact_ciphertext(vector: Vector) -> None:
    """Given the recovered random bytes, encryption must reproduce Tencent's ciphertext."""
    cipher = CallbackCipher(vector.key)
    assert cipher.encrypt(vector.msg, vector.receive_id, vector.random16) == vector.encrypted


def test_v1_signature_covers_values_in_byte_order() -> None:
    """Digits sort before letters, so the nonce and timestamp lead the signed string."""
    signed = V1.nonce + V1.timestamp + V1.token + V1.encrypted
    assert hashlib.sha1(signed.encode()).hexdigest() == V1.signature  # noqa: S324


def test_v1_message_is_284_bytes_with_newlines_between_elements() -> None:
    """The official example keeps the newlines, so msg_len counts them (7 of them)."""
    msg = CallbackCipher(V1_KEY).decrypt(V1.encrypted).msg
    assert len(msg) == 284
    assert msg.count(b"\n") == 7
    assert msg.startswith(b"<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n")


def test_v1_padding_is_30_bytes_of_0x1e_that_a_16_byte_unpadder_rejects() -> None:
    """Real traffic pads to 32, which is why we cannot use a stock 16-byte unpadder."""
    raw = open_raw(V1_KEY, V1.encrypted)
    assert len(raw) == 352
    assert raw[-30:] == b"\x1e" * 30
    assert raw[-31] != 0x1E
    with pytest.raises(ValueError, match="Padding"):
        unpad(raw, 16)


@pytest.mark.parametrize(
    ("vector", "body"),
    [(V2, b"1616140317555161061"), (V3, b"1288432023552776189")],
    ids=["V2", "V3"],
)
def test_url_verification_echostr_decrypts_to_response_body(vector: Vector, body: bytes) -> None:
    """The GET handshake must answer with the decrypted echostr exactly, nothing added."""
    opened = CallbackCipher(vector.key).decrypt(vector.encrypted)
    assert opened.msg == body
    assert len(opened.msg) == 19


def test_v4_msg_len_counts_utf8_bytes_not_characters() -> None:
    """msg_len is 228 bytes though the text is 224 characters: 你好 is six bytes in UTF-8."""
    msg = CallbackCipher(V3_KEY).decrypt(V4.encrypted).msg
    assert len(msg) == 228
    assert "<Content>你好</Content>".encode() in msg
    assert len(msg.decode()) == 224


def test_v5_json_variant_decrypts_without_being_parsed() -> None:
    """Decryption returns bytes and never parses them, so even broken JSON comes out intact."""
    opened = CallbackCipher(V3_KEY).decrypt(V5.encrypted)
    assert len(opened.msg) == 176
    assert b'"FromUserName": :mycreate"' in opened.msg
    assert opened.receive_id == V3_RECEIVE_ID


def test_v7_empty_receive_id_and_full_padding_block() -> None:
    """Individual-developer apps get an empty receive id; 64-byte bodies get a 0x20 block."""
    raw = open_raw(V1_KEY, V7.encrypted)
    assert len(raw) == 96
    assert raw[64:] == b"\x20" * 32
    assert CallbackCipher(V1_KEY).decrypt(V7.encrypted).receive_id == b""


def test_v6_jssdk_signature_matches_official_example() -> None:
    """wx.config fails with 40093 unless our JS-SDK signature matches WeCom's exactly."""
    url = "http://mp.weixin.qq.com?params=value"
    assert jssdk_signature(V6_TICKET, "Wm3WZYTPz0wzccnW", "1414587457", url) == V6_SIGNATURE


def test_jssdk_signature_ignores_url_fragment() -> None:
    """The browser never sends the #fragment, so WeCom signs the URL without it."""
    url = "http://mp.weixin.qq.com?params=value#/route?x=1"
    assert jssdk_signature(V6_TICKET, "Wm3WZYTPz0wzccnW", "1414587457", url) == V6_SIGNATURE


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("receive_id", [b"", V1_RECEIVE_ID, b"x"], ids=["empty", "corp", "one"])
def test_round_trip_for_messages_of_0_to_100_bytes_covers_every_pad_value(
    receive_id: bytes,
) -> None:
    """Every pad value 1..32 must survive encrypt then decrypt, including the full block."""
    cipher = CallbackCipher(V1_KEY)
    pads_seen: set[int] = set()
    for length in range(101):
        msg = bytes(range(256))[:length]
        encrypted = cipher.encrypt(msg, receive_id)
        assert cipher.decrypt(encrypted) == DecryptedMessage(msg=msg, receive_id=receive_id)
        pads_seen.add(open_raw(V1_KEY, encrypted)[-1])
    assert pads_seen == set(range(1, 33))


@given(
    msg=st.binary(max_size=600),
    receive_id=st.binary(max_size=40),
    random16=st.binary(min_size=16, max_size=16),
)
def test_round_trip_restores_any_message_and_receive_id(
    msg: bytes, receive_id: bytes, random16: bytes
) -> None:
    """Arbitrary bytes, even ones that look like padding or headers, must come back unchanged."""
    cipher = CallbackCipher(V3_KEY)
    opened = cipher.decrypt(cipher.encrypt(msg, receive_id, random16))
    assert opened == DecryptedMessage(msg=msg, receive_id=receive_id)


def test_encrypt_draws_fresh_random_bytes_each_call() -> None:
    """Two replies with the same body must not share a ciphertext (fixed IV, so random16 must)."""
    cipher = CallbackCipher(V1_KEY)
    first, second = cipher.encrypt(b"same", b""), cipher.encrypt(b"same", b"")
    assert first != second
    assert open_raw(V1_KEY, first)[:16] != open_raw(V1_KEY, second)[:16]
    assert cipher.decrypt(first) == cipher.decrypt(second)


@pytest.mark.parametrize("random16", [b"", b"0" * 15, b"0" * 17], ids=["0", "15", "17"])
def test_encrypt_rejects_random_prefix_that_is_not_16_bytes(random16: bytes) -> None:
    """A wrong-sized prefix would shift msg_len and produce an undecryptable payload."""
    with pytest.raises(ValueError, match="16 bytes"):
        CallbackCipher(V1_KEY).encrypt(b"msg", b"", random16)


# --- mutations are rejected (property-based) -----------------------------------------------


@st.composite
def mutated_ciphertexts(draw: st.DrawFn) -> tuple[Vector, bytes]:
    """A vector and its ciphertext bytes with one byte flipped, a tail cut off or bytes added."""
    vector = draw(st.sampled_from(VECTORS))
    data = base64.b64decode(vector.encrypted)
    kind = draw(st.sampled_from(["flip", "truncate", "append"]))
    if kind == "flip":
        index = draw(st.integers(0, len(data) - 1))
        mask = draw(st.integers(1, 255))
        mutated = data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]
    elif kind == "truncate":
        mutated = data[: draw(st.integers(0, len(data) - 1))]
    else:
        mutated = data + draw(st.binary(min_size=1, max_size=64))
    return vector, mutated


@given(mutated_ciphertexts())
def test_any_ciphertext_mutation_fails_the_signature_check(case: tuple[Vector, bytes]) -> None:
    """The signature covers the ciphertext, so a tampered one is stopped before decryption."""
    vector, mutated = case
    encrypted = base64.b64encode(mutated).decode()
    # Same separator caveat as the timestamp test below.
    assume(
        sorted_concat(vector.token, vector.timestamp, vector.nonce, encrypted)
        != sorted_concat(vector.token, vector.timestamp, vector.nonce, vector.encrypted)
    )
    with pytest.raises(SignatureError):
        open_callback(vector, vector.timestamp, vector.nonce, encrypted, vector.signature)


@given(mutated_ciphertexts())
def test_mutated_ciphertext_without_signature_never_decrypts_to_original(
    case: tuple[Vector, bytes],
) -> None:
    """Decryption alone must reject tampering or give a different result, never crash."""
    vector, mutated = case
    try:
        opened = CallbackCipher(vector.key).decrypt(base64.b64encode(mutated).decode())
    except CallbackError:
        return
    assert opened != DecryptedMessage(msg=vector.msg, receive_id=vector.receive_id)


@given(st.one_of(st.text(), st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())))
def test_decrypt_of_arbitrary_input_raises_only_callback_errors(text: str) -> None:
    """Whatever arrives in <Encrypt>, the gateway must see a 4xx error, never a 500."""
    with contextlib.suppress(CallbackError):
        CallbackCipher(V1_KEY).decrypt(text)


@st.composite
def hex_flips(draw: st.DrawFn, original: str) -> str:
    """The original hex signature with one character changed to another hex digit."""
    index = draw(st.integers(0, len(original) - 1))
    char = draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != original[index]))
    return original[:index] + char + original[index + 1 :]


@given(
    vector=st.sampled_from(VECTORS),
    data=st.data(),
)
def test_any_signature_mutation_is_rejected(vector: Vector, data: st.DataObject) -> None:
    """Any other signature, well-formed or garbage, must fail with SignatureError only."""
    forged = data.draw(st.one_of(hex_flips(vector.signature), st.text()))
    assume(forged != vector.signature)
    with pytest.raises(SignatureError):
        open_callback(vector, vector.timestamp, vector.nonce, vector.encrypted, forged)


@given(vector=st.sampled_from(VECTORS), timestamp=st.text())
def test_any_timestamp_mutation_is_rejected(vector: Vector, timestamp: str) -> None:
    """A replayed body under a new timestamp must fail, or the replay window means nothing."""
    # The scheme signs the values joined without a separator, so a change that leaves the
    # joined string identical (characters shifted across a value boundary) is undetectable
    # by design; such draws are skipped rather than counted as caught.
    assume(
        sorted_concat(vector.token, timestamp, vector.nonce, vector.encrypted)
        != sorted_concat(vector.token, vector.timestamp, vector.nonce, vector.encrypted)
    )
    with pytest.raises(SignatureError):
        open_callback(vector, timestamp, vector.nonce, vector.encrypted, vector.signature)


@given(vector=st.sampled_from(VECTORS), nonce=st.text())
def test_any_nonce_mutation_is_rejected(vector: Vector, nonce: str) -> None:
    """The nonce is signed too; see the timestamp test for the separator caveat."""
    assume(
        sorted_concat(vector.token, vector.timestamp, nonce, vector.encrypted)
        != sorted_concat(vector.token, vector.timestamp, vector.nonce, vector.encrypted)
    )
    with pytest.raises(SignatureError):
        open_callback(vector, vector.timestamp, nonce, vector.encrypted, vector.signature)


@given(values=st.permutations(["QDG6eK", "1409659813", "1372623149", V1.encrypted]))
def test_signature_does_not_depend_on_argument_order(values: list[str]) -> None:
    """Values are sorted before hashing, so a mixed-up call site still signs correctly."""
    assert compute_signature(*values) == V1.signature


def test_signature_sorts_by_byte_value_so_uppercase_comes_first() -> None:
    """Byte order, not case-insensitive or locale order, is what WeCom uses."""
    expected = hashlib.sha1(b"Aabc").hexdigest()  # noqa: S324
    assert compute_signature("b", "a", "c", "A") == expected


# --- each error for its case ---------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        "",
        V1.signature[:-1],
        V1.signature + "0",
        V1.signature.upper(),
        "g" * 40,
        "é" * 40,
        V1.signature + "\n",
        " " + V1.signature[1:],
    ],
    ids=["empty", "39", "41", "uppercase", "non-hex", "non-ascii", "newline", "space"],
)
def test_malformed_signature_is_a_signature_error(signature: str) -> None:
    """A malformed signature must not reach compare_digest, which raises TypeError on non-ASCII."""
    with pytest.raises(SignatureError):
        verify_signature(V1.token, V1.timestamp, V1.nonce, V1.encrypted, signature)


def test_signature_over_unencodable_value_is_a_signature_error() -> None:
    """A lone surrogate from a hostile query string must be a 403, not a UnicodeEncodeError."""
    with pytest.raises(SignatureError):
        verify_signature(V1.token, V1.timestamp, "\udc80", V1.encrypted, V1.signature)


@pytest.mark.parametrize(
    "encrypted",
    [
        "not base64!",
        "密文密文",
        "AAAA AAAA",
        "AAAA\nAAAA",
        V2.encrypted + "\n",
        " " + V2.encrypted,
        "AAA",
        "AAAA====",
        "AAAA=",
        "AA=A",
        "-_-_",
    ],
    ids=[
        "punctuation",
        "non-ascii",
        "space",
        "newline",
        "trailing-newline",
        "leading-space",
        "short-padding",
        "extra-padding",
        "padding-after-full-quantum",
        "inner-padding",
        "urlsafe",
    ],
)
def test_non_strict_base64_is_a_base64_error(encrypted: str) -> None:
    """Lenient decoders skip junk; we refuse it so what we decrypt is exactly what was signed."""
    with pytest.raises(Base64Error):
        CallbackCipher(V1_KEY).decrypt(encrypted)


@pytest.mark.parametrize("size", [0, 1, 15, 17, 31, 47], ids=lambda n: f"{n}-bytes")
def test_ciphertext_that_is_not_whole_aes_blocks_is_a_length_error(size: int) -> None:
    """CBC works on 16-byte blocks; anything else was cut or padded in transit."""
    with pytest.raises(LengthError):
        CallbackCipher(V1_KEY).decrypt(base64.b64encode(b"\x00" * size).decode())


HEADER = b"0123456789abcdef" + (3).to_bytes(4, "big") + b"abc"  # 23 bytes of valid layout


@pytest.mark.parametrize(
    "plaintext",
    [
        HEADER + b"\x07" * 8 + b"\x00",
        HEADER + b"\x21" * 41,
        HEADER + b"\xff" * 41,
        HEADER + b"\x07" * 5 + b"\x05\x04\x04\x04",
    ],
    ids=["pad-0", "pad-33", "pad-255", "inconsistent"],
)
def test_bad_padding_is_a_padding_error(plaintext: bytes) -> None:
    """Only 1..32 copies of the pad value are valid 32-byte PKCS#7."""
    with pytest.raises(PaddingError):
        CallbackCipher(V1_KEY).decrypt(seal_raw(plaintext))


def test_pad_value_larger_than_a_16_byte_ciphertext_is_a_padding_error() -> None:
    """A pad of 32 on a one-block ciphertext points before the start, so it is malformed."""
    with pytest.raises(PaddingError):
        CallbackCipher(V1_KEY).decrypt(seal_raw(b"\x20" * 16))


@pytest.mark.parametrize(
    "plaintext",
    [
        b"0123456789abcdef\x00\x00" + b"\x0e" * 14,
        b"\x10" * 16,
        b"0123456789abcdef" + (4).to_bytes(4, "big") + b"abc" + b"\x09" * 9,
        b"0123456789abcdef" + (0xFFFFFFFF).to_bytes(4, "big") + b"abc" + b"\x09" * 9,
    ],
    ids=["18-bytes-after-unpad", "nothing-after-unpad", "msg-len-one-too-big", "msg-len-max"],
)
def test_truncated_layout_is_a_length_error(plaintext: bytes) -> None:
    """A plaintext too short for its header, or a msg_len past the end, is a broken layout."""
    with pytest.raises(LengthError):
        CallbackCipher(V1_KEY).decrypt(seal_raw(plaintext))


def test_msg_len_reaching_exactly_the_end_leaves_an_empty_receive_id() -> None:
    """The boundary case is valid: a message filling the body means the receive id is empty."""
    plaintext = b"0123456789abcdef" + (3).to_bytes(4, "big") + b"abc" + b"\x09" * 9
    opened = CallbackCipher(V1_KEY).decrypt(seal_raw(plaintext))
    assert opened == DecryptedMessage(msg=b"abc", receive_id=b"")


def test_bare_twenty_byte_header_decrypts_to_empty_message() -> None:
    """Exactly 20 bytes after unpadding is the smallest valid layout, not a length error."""
    plaintext = b"0123456789abcdef" + bytes(4) + b"\x0c" * 12
    opened = CallbackCipher(V1_KEY).decrypt(seal_raw(plaintext))
    assert opened == DecryptedMessage(msg=b"", receive_id=b"")


@pytest.mark.parametrize(
    "key",
    [
        V1_KEY[:42],
        V1_KEY + "A",
        "",
        V1_KEY[:42] + "+",
        V1_KEY[:42] + "/",
        V1_KEY[:42] + "=",
        V1_KEY[:42] + " ",
        V1_KEY[:42] + "é",
        V1_KEY[:42] + "１",
        V1_KEY[:42] + "\n",
    ],
    ids=[
        "42-chars",
        "44-chars",
        "empty",
        "plus",
        "slash",
        "equals",
        "space",
        "non-ascii-letter",
        "fullwidth-digit",
        "trailing-newline",
    ],
)
def test_malformed_encoding_aes_key_is_rejected(key: str) -> None:
    """A bad key must stop start-up, and the error must not echo the secret."""
    with pytest.raises(InvalidAesKeyError) as caught:
        CallbackCipher(key)
    if key:
        assert key not in str(caught.value)


def test_key_with_nonzero_trailing_bits_is_accepted() -> None:
    """WeCom's own example key ends in bits base64 discards; rejecting it would break V1."""
    assert base64.b64encode(base64.b64decode(V1_KEY + "="))[:43].decode() != V1_KEY
    CallbackCipher(V1_KEY)


# --- passive replies -----------------------------------------------------------------------


def test_passive_reply_is_exact_xml_signed_over_its_own_values() -> None:
    """With fixed randomness the reply is fully determined; V7 was generated this way."""
    reply = build_passive_reply(
        CallbackCipher(V1_KEY), V1_TOKEN, V7.msg, b"", "1700000000", "abc123", V7.random16
    )
    assert reply == (
        f"<xml><Encrypt><![CDATA[{V7.encrypted}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{V7.signature}]]></MsgSignature>"
        "<TimeStamp>1700000000</TimeStamp>"
        "<Nonce><![CDATA[abc123]]></Nonce></xml>"
    )


@given(
    msg=st.binary(max_size=200),
    # Letters, digits, punctuation and symbols: what XML can carry verbatim in CDATA.
    nonce=st.text(st.characters(categories=("L", "N", "P", "S"), exclude_characters="<")),
)
def test_passive_reply_parses_verifies_and_decrypts(msg: bytes, nonce: str) -> None:
    """What WeCom parses out of our reply must verify and decrypt back to what we sent."""
    assume("]]>" not in nonce)
    cipher = CallbackCipher(V3_KEY)
    reply = build_passive_reply(cipher, V3_TOKEN, msg, V3_RECEIVE_ID, "1476422779", nonce)
    root = ElementTree.fromstring(reply)
    values = {child.tag: child.text or "" for child in root}
    assert list(values) == ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"]
    assert values["Nonce"] == nonce
    assert values["TimeStamp"] == "1476422779"
    verify_signature(
        V3_TOKEN, values["TimeStamp"], values["Nonce"], values["Encrypt"], values["MsgSignature"]
    )
    assert cipher.decrypt(values["Encrypt"]) == DecryptedMessage(msg, V3_RECEIVE_ID)


@pytest.mark.parametrize(
    ("timestamp", "nonce"),
    [
        ("1700000000", "a]]>b"),
        ("1700000000", "<x/>"),
        ("17]]>00", "abc"),
        ("<TimeStamp>", "abc"),
        ("1&2", "abc"),
    ],
    ids=["nonce-cdata-end", "nonce-markup", "timestamp-cdata-end", "timestamp-markup", "amp"],
)
def test_passive_reply_refuses_values_that_break_out_of_xml(timestamp: str, nonce: str) -> None:
    """Echoed request values must not inject elements into the signed reply."""
    with pytest.raises(ValueError, match="must not contain"):
        build_passive_reply(CallbackCipher(V1_KEY), V1_TOKEN, b"x", b"", timestamp, nonce)


# --- the result type -----------------------------------------------------------------------


def test_decrypted_message_is_immutable_and_hides_the_payload_in_repr() -> None:
    """Handlers share one result; a stray log of it must not print the decrypted body."""
    opened = DecryptedMessage(msg=b"secret body", receive_id=b"ww1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opened.msg = b"other"  # type: ignore[misc]
    assert "secret body" not in repr(opened)
    assert "secret body" not in str(opened)
    assert "ww1" in repr(opened)


def test_cipher_repr_does_not_leak_the_key() -> None:
    """The cipher ends up in app state that debug tooling may print."""
    text = repr(CallbackCipher(V1_KEY))
    assert V1_KEY not in text
    assert base64.b64decode(V1_KEY + "=").hex() not in text
