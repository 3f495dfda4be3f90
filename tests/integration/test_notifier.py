"""The notifier on a real RabbitMQ against the simulator: every msgtype delivered, partial
and failed results, retries that never deliver twice, idempotency on the request id, and the
per-member send limit kept so the simulator drops nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import notify_command
from tests.support import rabbitmq
from tests.support.notifier import (
    CORP,
    NotifierRig,
    notifier_rig,
    outcomes_for,
    scaled_clock,
    text_request,
)

pytestmark = pytest.mark.integration

SEND = "/cgi-bin/message/send"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
AMR = b"#!AMR\n" + b"\1" * 32
MP4 = b"\0\0\0\x18ftypmp42" + b"\0" * 32


@pytest.fixture(scope="module")
def vhost_url(amqp_url: str) -> Iterator[str]:
    """A vhost of this module's own: its durable queues die with it."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    with rabbitmq.fresh_vhost("wecom-notifier") as url:
        yield url


@pytest.fixture
async def rig(
    vhost_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[NotifierRig]:
    # A short client timeout so that the ambiguous-timeout test is quick.
    async with notifier_rig(
        vhost_url, tmp_path, name=request.node.name, wecom_api_timeout_s=0.5
    ) as started:
        yield started


def _inline(filename: str, data: bytes) -> dict[str, str]:
    return {"filename": filename, "data": base64.b64encode(data).decode()}


def _message(msgtype: str, block: dict[str, Any]) -> dict[str, Any]:
    return {"msgtype": msgtype, msgtype: block}


MESSAGES = [
    _message("text", {"content": "hello"}),
    _message("markdown", {"content": "**hello**"}),
    _message("image", {"inline": _inline("chart.png", PNG)}),
    _message("voice", {"inline": _inline("note.amr", AMR)}),
    _message("video", {"inline": _inline("clip.mp4", MP4), "title": "clip"}),
    _message("file", {"inline": _inline("report.txt", b"some report text")}),
    _message("textcard", {"title": "Card", "description": "desc", "url": "https://example.com/x"}),
    _message("news", {"articles": [{"title": "News", "url": "https://example.com/n"}]}),
    _message(
        "mpnews",
        {"articles": [{"title": "Mp", "thumb": _inline("thumb.png", PNG), "content": "body"}]},
    ),
    _message(
        "miniprogram_notice",
        {"appid": "wx123", "title": "Mini", "content_item": [{"key": "k", "value": "v"}]},
    ),
    _message(
        "template_card",
        {
            "card_type": "button_interaction",
            "task_id": "task-1",
            "main_title": {"title": "Approve?"},
            "button_list": [{"text": "Yes", "key": "yes"}],
        },
    ),
]


def _request(message: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": f"req-{uuid.uuid4().hex}",
        "corp_id": CORP,
        "to": {"users": ["alice"]},
        "message": message,
        **fields,
    }


async def test_every_msgtype_is_delivered_and_operations_apply(rig: NotifierRig) -> None:
    """Each msgtype reaches the member; inline media is uploaded once and reused; the card
    is updated with its response_code and a message is recalled by its msgid."""
    requests = [_request(message) for message in MESSAGES]
    for request in requests:
        await rig.publish(request)
    results = [await rig.results.wait(request["id"]) for request in requests]
    assert [r.status for r in results] == ["sent"] * len(MESSAGES), results
    sent = await rig.sent()
    assert sorted(entry["body"]["msgtype"] for entry in sent) == sorted(
        m["msgtype"] for m in MESSAGES
    )
    assert all(entry["outcomes"] == {"alice": "delivered"} for entry in sent)
    # The same PNG under the same name was uploaded once for the image and once for the thumb
    # (different names are different files), and a resend reuses the cached media_id.
    again = _request(_message("image", {"inline": _inline("chart.png", PNG)}))
    await rig.publish(again)
    assert (await rig.results.wait(again["id"])).status == "sent"
    assert (await rig.calls())["/cgi-bin/media/upload"] == 5

    card = next(entry for entry in sent if entry["body"]["msgtype"] == "template_card")
    update = _request(
        {
            "msgtype": "update_template_card",
            "update_template_card": {
                "response_code": card["response_code"],
                "button": {"replace_name": "Done"},
            },
        }
    )
    recall = _request({"msgtype": "recall", "recall": {"msgid": results[0].msgid}}, to={})
    for request in (update, recall):
        await rig.publish(request)
    assert (await rig.results.wait(update["id"])).status == "sent"
    assert (await rig.results.wait(recall["id"])).status == "sent"
    after = {entry["msgid"]: entry for entry in await rig.sent()}
    assert after[card["msgid"]]["updates"]
    assert after[results[0].msgid]["recalled"] is True


async def test_invalid_users_make_a_partial_result(rig: NotifierRig) -> None:
    """A send with one unknown user is partial, naming the lowercased invalid user."""
    request = text_request("hi", users=("alice", "Stranger"))
    await rig.publish(request)
    result = await rig.results.wait(request["id"])
    assert result.status == "partial"
    assert result.invalid_users == ["stranger"]
    assert outcomes_for(await rig.sent(), "alice") == ["delivered"]


async def test_all_recipients_invalid_fails_with_wecoms_errcode(rig: NotifierRig) -> None:
    """A send where no recipient exists fails with WeCom's 81013 after one attempt."""
    request = text_request("hi", users=("nobody",))
    await rig.publish(request)
    result = await rig.results.wait(request["id"])
    assert (result.status, result.errcode, result.attempts) == ("failed", 81013, 1)


async def test_system_busy_is_retried_and_delivered_once(rig: NotifierRig) -> None:
    """A -1 system busy answer is retried once and the member gets the message once."""
    await rig.fault(SEND, errcode=-1, times=1)
    request = text_request("busy then fine")
    await rig.publish(request)
    result = await rig.results.wait(request["id"])
    assert (result.status, result.attempts) == ("sent", 2)
    assert outcomes_for(await rig.sent(), "alice") == ["delivered"]


async def test_a_timeout_after_delivery_never_delivers_twice(rig: NotifierRig) -> None:
    """WeCom delivers but answers after the client gave up; the retry goes out with the
    duplicate check on, so the member gets the message once."""
    rig.proxy.hold(SEND, 1.0)
    request = text_request("slow but delivered")
    await rig.publish(request)
    result = await rig.results.wait(request["id"])
    assert (result.status, result.attempts) == ("sent", 2)
    sent = await rig.sent()
    assert outcomes_for(sent, "alice") == ["delivered", "duplicate"]
    retry = sent[-1]["body"]
    assert retry["enable_duplicate_check"] == 1
    assert retry["duplicate_check_interval"] > 60


async def test_a_token_expired_mid_flight_is_refreshed(rig: NotifierRig) -> None:
    """A 42001 expired-token answer refreshes the corp token and the message is sent."""
    await rig.fault(SEND, errcode=42001, times=1)
    request = text_request("token expired")
    await rig.publish(request)
    result = await rig.results.wait(request["id"])
    assert result.status == "sent"
    assert outcomes_for(await rig.sent(), "alice") == ["delivered"]
    assert (await rig.calls())["/cgi-bin/service/get_corp_token"] >= 1


async def test_the_same_request_id_is_sent_once(rig: NotifierRig) -> None:
    """A republished request gets its stored result again and sends nothing."""
    request = text_request("once only")
    await rig.publish(request)
    first = await rig.results.wait(request["id"])
    await rig.publish(request, message_id="another-message-id")
    await rig.results.wait(request["id"], count=2)
    assert rig.results.by_id[request["id"]] == [first, first]
    assert outcomes_for(await rig.sent(), "alice") == ["delivered"]


async def test_bad_requests_fail_with_the_reason(rig: NotifierRig) -> None:
    """Oversized, non-JSON and message-less requests fail with their reason, sending nothing."""
    long_text = text_request("x" * 2049, request_id="too-long")
    await rig.publish(long_text)
    await rig.publish(b"not json", message_id="not-json")
    await rig.publish({"id": "no-message", "corp_id": CORP, "to": {"users": ["alice"]}})
    too_long = await rig.results.wait("too-long")
    assert too_long.status == "failed"
    assert too_long.errmsg == "message.text.content: exceeds 2048 bytes (got 2049)"
    assert (await rig.results.wait("not-json")).status == "failed"
    missing = await rig.results.wait("no-message")
    assert missing.errmsg == "message: is required"
    assert await rig.sent() == []


async def test_a_passed_deadline_expires_the_request(rig: NotifierRig) -> None:
    """A request whose deadline has passed is reported expired and never sent."""
    request = text_request("too late", deadline="2020-01-01T00:00:00Z")
    await rig.publish(request)
    assert (await rig.results.wait(request["id"])).status == "expired"
    assert await rig.sent() == []


async def test_forty_messages_to_one_member_are_all_delivered_in_time(
    vhost_url: str, tmp_path: Path
) -> None:
    """10 per minute at the simulator (a minute lasting 2 s) and at the notifier: nothing is
    dropped, everything arrives as the windows free up."""
    async with notifier_rig(
        vhost_url,
        tmp_path,
        name="limits",
        sim_clock=scaled_clock(30),
        sim={"sim_send_limit_minute": 10, "sim_send_limit_hour": 0},
        notify_limit_member_per_minute=10,
        notify_limit_member_per_hour=0,
        notify_limit_minute_s=2.0,
        notify_limit_margin_s=0.1,
    ) as rig:
        requests = [text_request(f"message {n}") for n in range(40)]
        for request in requests:
            await rig.publish(request)
        results = [await rig.results.wait(r["id"], timeout=40) for r in requests]
        assert {r.status for r in results} == {"sent"}
        outcomes = outcomes_for(await rig.sent(), "alice")
        assert outcomes == ["delivered"] * 40
        assert json.dumps(outcomes).count("dropped_limit") == 0


async def test_the_notify_command_publishes_and_waits_for_the_result(
    rig: NotifierRig,
    vhost_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """wecom-suite notify prints the request, waits, and prints its sent result."""
    monkeypatch.setenv("AMQP_URL", vhost_url)
    status = await asyncio.to_thread(notify_command, CORP, "alice", "from the CLI", wait_s=15)
    assert status == 0
    # Only the command's own output is JSON (log lines are rendered for the console here).
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    request_id = json.loads(lines[0])["id"]
    assert json.loads(lines[-1])["request_id"] == request_id
    assert json.loads(lines[-1])["status"] == "sent"
    assert outcomes_for(await rig.sent(), "alice") == ["delivered"]


def test_without_amqp_url_the_notify_command_needs_the_gateway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without AMQP_URL it posts to (and, waiting, reads from) the gateway's internal API;
    with no gateway listening it says so."""
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("INTERNAL_API_KEY", "a-key-of-sixteen-chars")
    assert notify_command(CORP, "alice", "hi") == 1
    assert notify_command(CORP, "alice", "hi", wait_s=5) == 1
