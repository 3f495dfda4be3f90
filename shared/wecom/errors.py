"""Typed failures of WeCom callback handling.

Every class maps to one HTTP answer of the gateway (``status``) and names the matching error
code of Tencent's sample libraries (``sample_code``, e.g. -40001) so operators can compare.
"""

from __future__ import annotations

from typing import ClassVar

from shared.errors import ConfigurationError, InvalidRequest


class CallbackError(InvalidRequest):
    """Base of every rejected callback: bad input, never a server fault."""

    code = "callback_invalid"
    sample_code: ClassVar[int] = 0
    reason = "invalid callback"


class SignatureError(CallbackError):
    code = "signature_invalid"
    status = 403
    sample_code = -40001
    reason = "msg_signature does not match"


class StaleTimestampError(CallbackError):
    code = "timestamp_out_of_window"
    status = 403
    reason = "timestamp is outside the accepted window"


class MissingParameterError(CallbackError):
    code = "missing_parameter"
    reason = "a required query parameter is missing"


class XmlError(CallbackError):
    code = "xml_invalid"
    sample_code = -40002
    reason = "the XML is malformed or not allowed"


class MissingEncryptError(CallbackError):
    code = "encrypt_missing"
    sample_code = -40002
    reason = "the XML has no Encrypt element"


class Base64Error(CallbackError):
    code = "base64_invalid"
    sample_code = -40010
    reason = "the ciphertext is not valid base64"


class LengthError(CallbackError):
    code = "length_invalid"
    sample_code = -40008
    reason = "the ciphertext or its plaintext layout has an invalid length"


class PaddingError(CallbackError):
    code = "padding_invalid"
    sample_code = -40007
    reason = "the plaintext padding is invalid"


class ReceiveIdError(CallbackError):
    code = "receive_id_rejected"
    sample_code = -40005
    reason = "the receive id is not accepted"


class InvalidAesKeyError(ConfigurationError):
    code = "encoding_aes_key_invalid"
    reason = "WECOM_ENCODING_AES_KEY must be 43 characters of [A-Za-z0-9] decoding to 32 bytes"
