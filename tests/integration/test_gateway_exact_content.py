"""The gateway over real HTTP publishes members' text exactly, and refuses envelope markup."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from shared.wecom.crypto import compute_signature
from shared.wecom.sealing import SealedCallback
from shared.wecom.xml import cdata
from tests.support.gateway import NOW, GatewayHarness, serve_gateway


@pytest.fixture
async def gw() -> AsyncIterator[GatewayHarness]:
    async with serve_gateway() as harness:
        yield harness


def _text_message(msg_id: str, content: str) -> bytes:
    """A text message laid out as WeCom's samples are: one field a line, indented."""
    return (
        f"<xml>\n  <ToUserName><![CDATA[wwcorp1]]></ToUserName>\n"
        f"  <FromUserName><![CDATA[zhangsan]]></FromUserName>\n"
        f"  <CreateTime>{NOW}</CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n"
        f"  <Content>{cdata(content)}</Content>\n  <MsgId>{msg_id}</MsgId>\n"
        f"  <AgentID>1000002</AgentID>\n</xml>\n"
    ).encode()


CONTENTS = [
    "def f(x):\n    return x < 1 and x & 2\n\n",
    "\n\t  indented\n",
    "   ",
    "x]]>y a&b<c",
]


@pytest.mark.parametrize("content", CONTENTS, ids=["code", "indented", "spaces", "markup"])
async def test_a_members_text_is_published_byte_for_byte(gw: GatewayHarness, content: str) -> None:
    """payload.content and raw.Content are exactly what the member typed."""
    status, _ = await gw.post("data", gw.seal(_text_message("1", content), "wwcorp1"))
    assert status == 200
    [published] = await gw.events(1)
    assert published["payload"]["content"] == content
    assert published["raw"]["Content"] == content
    assert published["raw"]["MsgType"] == "text"


def _envelope(gw: GatewayHarness, body_around: str) -> SealedCallback:
    """A correctly signed callback whose outer envelope is ``body_around`` % the Encrypt."""
    sealed = gw.seal(_text_message("2", "hi"), "wwcorp1")
    encrypted = sealed.body.split(b"<Encrypt><![CDATA[")[1].split(b"]]>")[0].decode()
    query = {
        "msg_signature": compute_signature(gw.token, str(NOW), "77", encrypted),
        "timestamp": str(NOW),
        "nonce": "77",
    }
    return SealedCallback(query, (body_around % encrypted).encode())


@pytest.mark.parametrize(
    "shape",
    [
        "<xml><!--" + "x" * 60_000 + "--><Encrypt><![CDATA[%s]]></Encrypt></xml>",
        "<xml>" + "<!-- -->" * 6_000 + "<Encrypt><![CDATA[%s]]></Encrypt></xml>",
        '<?xml version="1.0"?><?pi x?><xml><Encrypt><![CDATA[%s]]></Encrypt></xml>',
    ],
    ids=["60 KB comment", "comment flood", "processing instruction"],
)
async def test_an_envelope_with_comments_or_pis_is_400_and_publishes_nothing(
    gw: GatewayHarness, shape: str
) -> None:
    """Even correctly signed, such an envelope is malformed input: 400, nothing published."""
    status, body = await gw.post("data", _envelope(gw, shape))
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "xml_invalid"
    assert gw.published() == 0


@pytest.mark.parametrize(
    "shape",
    [
        '<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n'
        "  <ToUserName><![CDATA[wwcorp1]]></ToUserName>\n"
        "  <Encrypt><![CDATA[%s]]></Encrypt>\n</xml>\n",
        "<xml><Encrypt>%s</Encrypt></xml>",
    ],
    ids=["declaration and indentation", "plain text"],
)
async def test_legitimate_envelope_shapes_are_still_accepted(
    gw: GatewayHarness, shape: str
) -> None:
    """A declaration, indentation or plain text in the envelope is not markup to refuse."""
    status, body = await gw.post("data", _envelope(gw, shape))
    assert status == 200, body
    assert len(await gw.events(1)) == 1
