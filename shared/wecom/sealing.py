"""Builds callbacks the way WeCom sends them: encrypted, signed, wrapped in the outer XML.

Used wherever we play WeCom's part: the simulator, the benchmarks, the tests and the
listing checker's online URL verification.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from shared.wecom.crypto import CallbackCipher, compute_signature
from shared.wecom.xml import cdata


@dataclass(frozen=True, slots=True)
class SealedCallback:
    """A callback request ready to send: its query parameters and its body."""

    query: dict[str, str]
    body: bytes


def _nonce() -> str:
    return str(secrets.randbelow(10**10))


def seal_callback(
    cipher: CallbackCipher,
    token: str,
    plaintext: bytes,
    receive_id: str,
    *,
    timestamp: int,
    nonce: str | None = None,
    to_user_name: str = "",
    agent_id: str = "",
    random16: bytes | None = None,
) -> SealedCallback:
    """Encrypt ``plaintext`` and sign it as a POST callback (protocol doc §2.6).

    Args:
        cipher: the app's callback cipher (EncodingAESKey).
        token: the callback Token.
        plaintext: the inner XML WeCom encrypts.
        receive_id: appended after the message before encryption (protocol doc §2.4).
        timestamp: seconds since the epoch, signed into the request.
        nonce: the request nonce; random digits when omitted.
        to_user_name: the outer ``ToUserName`` (SuiteID or CorpID; informational).
        agent_id: the outer ``AgentID`` (empty on instruction callbacks).
        random16: fixes the 16 random bytes (tests, reproducible benchmarks).
    """
    nonce = nonce or _nonce()
    encrypted = cipher.encrypt(plaintext, receive_id.encode(), random16)
    signature = compute_signature(token, str(timestamp), nonce, encrypted)
    body = (
        f"<xml><ToUserName>{cdata(to_user_name)}</ToUserName>"
        f"<AgentID>{cdata(agent_id)}</AgentID>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    ).encode()
    query = {"msg_signature": signature, "timestamp": str(timestamp), "nonce": nonce}
    return SealedCallback(query, body)


def seal_verification(
    cipher: CallbackCipher,
    token: str,
    echo: str,
    receive_id: str,
    *,
    timestamp: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """The query of a URL verification (GET) whose correct answer is ``echo``."""
    nonce = nonce or _nonce()
    echostr = cipher.encrypt(echo.encode(), receive_id.encode())
    signature = compute_signature(token, str(timestamp), nonce, echostr)
    return {
        "msg_signature": signature,
        "timestamp": str(timestamp),
        "nonce": nonce,
        "echostr": echostr,
    }
