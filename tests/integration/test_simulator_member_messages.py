"""``/_sim/message`` validates each msgtype's fields (§6.1) and pushes nothing it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.simulator import serve_simulator

MEMBER = {"corp_id": "wwcorp1", "user_id": "alice"}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"msgtype": "text"}, "needs content"),
        ({"msgtype": "text", "content": ""}, "content"),
        ({"msgtype": "image", "media_id": "M"}, "needs pic_url"),
        ({"msgtype": "image", "pic_url": "https://x/a.jpg"}, "needs media_id"),
        ({"msgtype": "voice", "media_id": "M"}, "needs format"),
        ({"msgtype": "video", "media_id": "M"}, "needs thumb_media_id"),
        (
            {"msgtype": "location", "location_x": 1.5, "scale": 3, "label": "x"},
            "needs location_y",
        ),
        (
            {"msgtype": "location", "location_x": 91, "location_y": 0, "scale": 1, "label": ""},
            "location_x",
        ),
        (
            {"msgtype": "link", "title": "t", "description": "d", "url": "https://x"},
            "needs pic_url",
        ),
        (
            {
                "msgtype": "link",
                "title": "t",
                "description": "d",
                "url": "ftp://x",
                "pic_url": "https://p",
            },
            "url",
        ),
        (
            {"msgtype": "image", "pic_url": "https://x/a.jpg", "media_id": "M", "content": "hi"},
            "takes no content",
        ),
        ({"msgtype": "file", "media_id": "M"}, "msgtype"),
    ],
)
async def test_bad_message_bodies_are_a_clear_400(fields: dict[str, Any], named: str) -> None:
    """Each malformed member message is a 400 naming the bad field, and nothing is pushed."""
    async with serve_simulator() as sim:
        await sim.install()
        status, answer = await sim.call("POST", "/_sim/message", body={**MEMBER, **fields})
        _, deliveries = await sim.call("GET", "/_sim/deliveries")
    assert status == 400
    assert answer["error"]["code"] == "invalid_request"
    assert named in answer["error"]["message"]
    assert deliveries["deliveries"] == []


async def test_text_stays_the_default_msgtype() -> None:
    """A member message with only content is taken as text and gets a numeric msg_id."""
    async with serve_simulator() as sim:
        await sim.install()
        status, answer = await sim.call("POST", "/_sim/message", body={**MEMBER, "content": "hi"})
    assert status == 200, answer
    assert answer["msg_id"].isdigit()
