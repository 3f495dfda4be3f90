"""32-byte PKCS#7 through pycryptodome's unpad, on plaintexts of an odd number of AES blocks.

WeCom always sends whole 32-byte blocks, but CBC only needs 16; these pin the decisions the
stock ``unpad(data, 32)`` would change (it refuses any length that is not a multiple of 32).
"""

from __future__ import annotations

import base64

import pytest
from Crypto.Cipher import AES

from shared.wecom.crypto import CallbackCipher, DecryptedMessage
from shared.wecom.errors import LengthError, PaddingError

KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
RANDOM16 = b"0123456789abcdef"


def seal_raw(plaintext: bytes) -> str:
    """AES-encrypt an already laid-out plaintext, padding included."""
    aes_key = base64.b64decode(KEY + "=")
    sealed = AES.new(aes_key, AES.MODE_CBC, iv=aes_key[:16]).encrypt(plaintext)
    return base64.b64encode(sealed).decode()


def test_three_block_plaintext_with_a_pad_above_16_decrypts() -> None:
    """48 bytes with 28 bytes of padding: valid 32-byte PKCS#7, accepted as before."""
    plaintext = RANDOM16 + (3).to_bytes(4, "big") + b"abc" + b"rid" + b"\x16" * 22
    assert len(plaintext) == 48
    opened = CallbackCipher(KEY).decrypt(seal_raw(plaintext))
    assert opened == DecryptedMessage(msg=b"abc", receive_id=b"rid")


def test_three_block_plaintext_with_a_full_32_byte_pad_keeps_its_first_block() -> None:
    """A pad of 32 on 48 bytes leaves 16, too short for the header: not a padding error."""
    plaintext = RANDOM16 + b"\x20" * 32
    with pytest.raises(LengthError, match="header"):
        CallbackCipher(KEY).decrypt(seal_raw(plaintext))


@pytest.mark.parametrize("pad", [17, 32], ids=["pad-17", "pad-32"])
def test_one_block_plaintext_with_a_pad_past_its_start_is_a_padding_error(pad: int) -> None:
    """The zeros standing in for the missing half block never match a pad byte."""
    plaintext = bytes([pad]) * 16
    with pytest.raises(PaddingError):
        CallbackCipher(KEY).decrypt(seal_raw(plaintext))
