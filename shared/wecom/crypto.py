"""WeCom callback crypto: msg_signature, AES-256-CBC with 32-byte PKCS#7, passive replies.

Implements protocol §2 (the "加解密方案") and the JS-SDK signature of §10.2. Pure functions
and one small cipher class: no I/O, no logging, nothing here ever sees the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad, unpad

from shared.wecom.errors import (
    Base64Error,
    InvalidAesKeyError,
    LengthError,
    PaddingError,
    SignatureError,
)

__all__ = [
    "CallbackCipher",
    "DecryptedMessage",
    "build_passive_reply",
    "compute_signature",
    "jssdk_signature",
    "verify_signature",
]

# WeCom pads to the AES-256 key length, not to the 16-byte AES block (protocol §2.1).
_PAD_BLOCK = 32
_AES_BLOCK = 16
_RANDOM_LEN = 16
# random(16) || msg_len(4): the smallest plaintext that still has a readable layout.
_HEADER_LEN = _RANDOM_LEN + 4
_MAX_MSG_LEN = 0xFFFFFFFF
# Zeros standing in for the missing first half of a 32-byte window (see _unpadded_length).
_HALF_WINDOW = bytes(_AES_BLOCK)
_SIGNATURE_RE = re.compile(r"[0-9a-f]{40}")
_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")


def _sha1_hex(data: bytes) -> str:
    # SHA-1 is mandated by the protocol for both signatures; we cannot pick another hash.
    return hashlib.sha1(data).hexdigest()  # noqa: S324 -- mandated by WeCom


def compute_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Compute the ``msg_signature`` WeCom puts on callbacks and expects on passive replies.

    Args:
        token: The callback Token configured in the WeCom console.
        timestamp: The ``timestamp`` query parameter (or the reply's ``TimeStamp``).
        nonce: The ``nonce`` query parameter (or the reply's ``Nonce``).
        encrypted: The base64 ciphertext exactly as received (``echostr`` or ``<Encrypt>``).

    Returns:
        40 lowercase hex characters: SHA-1 of the four values sorted byte-wise and
        concatenated without a separator.

    Raises:
        UnicodeEncodeError: A value holds a lone surrogate and has no UTF-8 form.
    """
    parts = sorted(value.encode() for value in (token, timestamp, nonce, encrypted))
    return _sha1_hex(b"".join(parts))


def verify_signature(
    token: str, timestamp: str, nonce: str, encrypted: str, signature: str
) -> None:
    """Check a callback's ``msg_signature`` in constant time.

    Call this before :meth:`CallbackCipher.decrypt`: the signature is what authenticates the
    ciphertext, and checking it first keeps the decryptor's distinct errors from acting as a
    padding oracle.

    Args:
        token: The callback Token configured in the WeCom console.
        timestamp: The ``timestamp`` query parameter.
        nonce: The ``nonce`` query parameter.
        encrypted: The base64 ciphertext exactly as received.
        signature: The ``msg_signature`` query parameter.

    Raises:
        SignatureError: The signature is not 40 lowercase hex characters or does not match.
    """
    # Checked first because hmac.compare_digest raises TypeError on non-ASCII str.
    if _SIGNATURE_RE.fullmatch(signature) is None:
        raise SignatureError("msg_signature is not 40 lowercase hex characters")
    try:
        expected = compute_signature(token, timestamp, nonce, encrypted)
    except UnicodeEncodeError as exc:
        raise SignatureError("a signed value is not valid text") from exc
    # The expected value never goes into the message: it would be a valid forged signature.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError


def jssdk_signature(ticket: str, noncestr: str, timestamp: str, url: str) -> str:
    """Sign a page for ``wx.config`` / ``wx.agentConfig`` (protocol §10.2).

    Args:
        ticket: The corp ``jsapi_ticket`` or the agent ticket.
        noncestr: The ``nonceStr`` also passed to the JS call.
        timestamp: Seconds since the epoch, as passed to the JS call.
        url: The page URL as the browser sees it; any ``#fragment`` is dropped here.

    Returns:
        40 lowercase hex characters.
    """
    page, _, _ = url.partition("#")
    string1 = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page}"
    return _sha1_hex(string1.encode())


@dataclass(frozen=True, slots=True)
class DecryptedMessage:
    """The plaintext of one callback: the message body and the receive id it was sealed for.

    Not a named tuple, though one is built per callback: the log redactor renders a tuple
    item by item, which would bypass the hidden repr below.
    """

    # Kept out of repr so a stray log line cannot leak a decrypted payload.
    msg: bytes = field(repr=False)
    receive_id: bytes


class CallbackCipher:
    """AES-256-CBC sealing and opening of callback payloads for one EncodingAESKey.

    Decryption runs CBC by hand on one shared ECB object: ECB carries no state, so it can be
    reused, which saves creating a CBC object (the larger part of the cost) per callback.
    Encryption, used only for replies and by stand-ins for WeCom, makes a CBC object per call
    because CBC objects carry chaining state and must not be shared.
    """

    __slots__ = ("_ecb", "_iv", "_key")

    def __init__(self, encoding_aes_key: str) -> None:
        """Derive the AES key from the console's EncodingAESKey.

        Args:
            encoding_aes_key: 43 characters of ``[A-Za-z0-9]``.

        Raises:
            InvalidAesKeyError: The key has the wrong length or alphabet, or does not decode
                to 32 bytes. The message never repeats the key.
        """
        # A regex rather than str.isalnum(), which also accepts non-ASCII letters and digits.
        if _KEY_RE.fullmatch(encoding_aes_key) is None:
            raise InvalidAesKeyError
        # Cannot raise once the alphabet is checked. The length test restates the spec (the
        # official -40004) instead of relying on 43 characters always giving 32 bytes.
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
        if len(key) != 32:
            raise InvalidAesKeyError
        self._key = key
        self._iv = key[:_AES_BLOCK]
        self._ecb = AES.new(key, AES.MODE_ECB)

    def decrypt(self, encrypted_b64: str) -> DecryptedMessage:
        """Open a callback ciphertext (``echostr`` or ``<Encrypt>``).

        Verify the signature first (see :func:`verify_signature`). The receive id is returned,
        not checked: which ids to accept is the caller's policy (protocol §2.4).

        Args:
            encrypted_b64: Standard base64 with padding, no whitespace.

        Returns:
            The message bytes (``msg_len`` long) and the receive id that follows them.

        Raises:
            Base64Error: The text is not strict base64 (including non-ASCII or whitespace).
            LengthError: The ciphertext is empty or not whole AES blocks, or the plaintext is
                too short for its header or its ``msg_len`` points past the end.
            PaddingError: The 32-byte PKCS#7 padding is malformed.
        """
        # validate=True is binascii's strict mode, which still accepts surplus "=" ("AAAA=",
        # "AAAA===="); two O(1) checks make the padding canonical as well.
        if len(encrypted_b64) % 4 or encrypted_b64.endswith("==="):
            raise Base64Error
        try:
            # What base64.b64decode(validate=True) runs, without its Python wrapper.
            data = binascii.a2b_base64(encrypted_b64, strict_mode=True)
        except ValueError as exc:  # binascii.Error, or a str with non-ASCII characters
            raise Base64Error from exc
        if not data or len(data) % _AES_BLOCK:
            raise LengthError("ciphertext is not a whole number of AES blocks")
        raw = self._cbc_decrypt(data)
        end = _unpadded_length(raw)
        if end < _HEADER_LEN:
            raise LengthError("plaintext is shorter than its 20-byte header")
        msg_end = _HEADER_LEN + int.from_bytes(raw[_RANDOM_LEN:_HEADER_LEN], "big")
        if msg_end > end:
            raise LengthError("msg_len points past the end of the plaintext")
        return DecryptedMessage(msg=raw[_HEADER_LEN:msg_end], receive_id=raw[msg_end:end])

    def _cbc_decrypt(self, data: bytes) -> bytes:
        """CBC decryption: P[i] = D(C[i]) xor C[i-1], with C[-1] = IV; one XOR over big ints."""
        blocks = self._ecb.decrypt(data)
        chain = self._iv + data[:-_AES_BLOCK]
        mixed = int.from_bytes(blocks, "big") ^ int.from_bytes(chain, "big")
        return mixed.to_bytes(len(data), "big")

    def encrypt(self, msg: bytes, receive_id: bytes, random16: bytes | None = None) -> str:
        """Seal a message the way WeCom does, e.g. for an encrypted passive reply.

        Args:
            msg: The plaintext body (UTF-8 XML for replies).
            receive_id: The receive id to seal with it; may be empty.
            random16: The 16 leading random bytes. Leave it ``None`` outside tests; fixing it
                makes the output deterministic, which is how the known vectors are reproduced.

        Returns:
            The base64 ciphertext, ready for ``<Encrypt>`` and :func:`compute_signature`.

        Raises:
            ValueError: ``random16`` is not 16 bytes, or ``msg`` is 4 GiB or longer.
        """
        if random16 is None:
            random16 = secrets.token_bytes(_RANDOM_LEN)
        elif len(random16) != _RANDOM_LEN:
            raise ValueError("random16 must be exactly 16 bytes")
        if len(msg) > _MAX_MSG_LEN:
            raise ValueError("msg is too long for its 4-byte length field")
        body = b"".join((random16, len(msg).to_bytes(4, "big"), msg, receive_id))
        # PKCS#7 pads 1..32, never 0: an exact multiple of 32 gets a whole block of 0x20.
        plaintext = pad(body, _PAD_BLOCK, style="pkcs7")
        sealed = AES.new(self._key, AES.MODE_CBC, iv=self._iv).encrypt(plaintext)
        return base64.b64encode(sealed).decode("ascii")


def _unpadded_length(raw: bytes) -> int:
    """Length of ``raw`` (whole AES blocks) without its 32-byte PKCS#7 padding.

    Only the last 32 bytes go through ``unpad``: it copies what it is given, and it insists on
    a multiple of 32 while CBC only needs 16. A one-block plaintext gets zeros in front, which
    no pad byte equals, so a pad reaching before its start stays malformed.
    """
    window = raw[-_PAD_BLOCK:] if len(raw) >= _PAD_BLOCK else _HALF_WINDOW + raw
    try:
        kept = len(unpad(window, _PAD_BLOCK, style="pkcs7"))
    except ValueError as exc:
        raise PaddingError from exc
    return len(raw) - len(window) + kept


def _check_reply_field(name: str, value: str, forbidden: tuple[str, ...]) -> None:
    for bad in forbidden:
        if bad in value:
            raise ValueError(f"{name} must not contain {bad!r}")


def build_passive_reply(
    cipher: CallbackCipher,
    token: str,
    msg: bytes,
    receive_id: bytes,
    timestamp: str,
    nonce: str,
    random16: bytes | None = None,
) -> str:
    """Build the encrypted passive-reply XML of protocol §2.7.

    Args:
        cipher: The cipher for the app's EncodingAESKey.
        token: The callback Token; it signs the reply and is not written into it.
        msg: The reply plaintext (a §7 XML document, UTF-8).
        receive_id: The receive id the inbound callback carried.
        timestamp: The reply's ``TimeStamp``, fresh or echoed from the request.
        nonce: The reply's ``Nonce``, fresh or echoed from the request.
        random16: Fixed random bytes for deterministic tests; ``None`` in production.

    Returns:
        The reply document, signed over exactly the values it contains.

    Raises:
        ValueError: ``timestamp`` or ``nonce`` could break out of its XML element, or
            ``random16`` is not 16 bytes.
    """
    # Nonce sits in CDATA, which only "]]>" can end; TimeStamp is bare text, so "&" would also
    # corrupt it. "<" is refused in both: neither value has a reason to contain markup.
    _check_reply_field("timestamp", timestamp, ("]]>", "<", "&"))
    _check_reply_field("nonce", nonce, ("]]>", "<"))
    encrypted = cipher.encrypt(msg, receive_id, random16)
    signature = compute_signature(token, timestamp, nonce, encrypted)
    return (
        f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )
