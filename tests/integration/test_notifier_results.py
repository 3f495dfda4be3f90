"""The notifier's results tell the truth, through the simulator: distinct requests with the
same content are all delivered, the caller's duplicate check is honoured and reported, and a
template card is updated with the response_code its result carries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import rabbitmq
from tests.support.notifier import NotifierRig, notifier_rig, outcomes_for, text_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vhost_url(amqp_url: str) -> Iterator[str]:
    """A vhost of this module's own: its durable queues die with it."""
    del amqp_url  # requested for its skip/fail semantics when no broker is there
    with rabbitmq.fresh_vhost("wecom-notifier-results") as url:
        yield url


@pytest.fixture
async def rig(
    vhost_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[NotifierRig]:
    async with notifier_rig(vhost_url, tmp_path, name=request.node.name) as started:
        yield started


async def test_two_distinct_requests_with_the_same_text_are_both_delivered(
    rig: NotifierRig,
) -> None:
    """ "Your code is 1234" twice under two request ids reaches the member twice, and neither
    result claims more than happened."""
    first = text_request("Your code is 1234")
    await rig.publish(first)
    one = await rig.results.wait(first["id"])
    second = text_request("Your code is 1234")
    await rig.publish(second)
    two = await rig.results.wait(second["id"])
    assert (one.status, two.status) == ("sent", "sent")
    assert outcomes_for(await rig.sent(), "alice") == ["delivered", "delivered"]
    # The first kept the check on to protect its own retries; the second could not.
    assert (one.duplicate_check, two.duplicate_check) == (True, False)


async def test_the_callers_duplicate_check_is_honoured_and_reported(rig: NotifierRig) -> None:
    """Asked for, the check holds the second request back, and its result says so."""
    options = {"enable_duplicate_check": 1, "duplicate_check_interval": 600}
    first = text_request("same twice", options=options)
    await rig.publish(first)
    assert (await rig.results.wait(first["id"])).status == "sent"
    second = text_request("same twice", users=("alice", "bob"), options=options)
    await rig.publish(second)
    result = await rig.results.wait(second["id"])
    assert result.duplicate_check is True
    assert result.status == "partial"
    assert result.duplicate_users == ["alice"]
    assert outcomes_for(await rig.sent(), "alice") == ["delivered", "duplicate"]
    assert outcomes_for(await rig.sent(), "bob") == ["delivered"]
    third = text_request("same twice", options=options)
    await rig.publish(third)
    held = await rig.results.wait(third["id"])
    assert (held.status, held.errcode, held.duplicate_users) == ("failed", 0, ["alice"])


async def test_switched_off_the_duplicate_check_is_never_used(rig: NotifierRig) -> None:
    """enable_duplicate_check 0 goes out as 0."""
    request = text_request("no check", options={"enable_duplicate_check": 0})
    await rig.publish(request)
    result = await rig.results.wait(request["id"])
    assert (result.status, result.duplicate_check) == ("sent", False)
    assert (await rig.sent())[-1]["body"]["enable_duplicate_check"] == 0


async def test_a_card_is_updated_with_the_response_code_of_its_result(rig: NotifierRig) -> None:
    """The result of an interactive card carries WeCom's response_code and msgid; an
    update_template_card with that code applies to the card."""
    card = text_request("unused")
    card["message"] = {
        "msgtype": "template_card",
        "template_card": {
            "card_type": "button_interaction",
            "task_id": f"task-{uuid.uuid4().hex[:8]}",
            "main_title": {"title": "Approve?"},
            "button_list": [{"text": "Yes", "key": "yes"}],
        },
    }
    await rig.publish(card)
    sent = await rig.results.wait(card["id"])
    assert sent.status == "sent"
    assert sent.response_code is not None
    assert sent.msgid is not None
    update = text_request("unused")
    update["message"] = {
        "msgtype": "update_template_card",
        "update_template_card": {
            "response_code": sent.response_code,
            "button": {"replace_name": "Approved"},
        },
    }
    await rig.publish(update)
    assert (await rig.results.wait(update["id"])).status == "sent"
    by_msgid = {entry["msgid"]: entry for entry in await rig.sent()}
    assert by_msgid[sent.msgid]["updates"][0]["button"] == {"replace_name": "Approved"}
    # Single use: the same code again is refused by WeCom.
    again = dict(update, id=f"req-{uuid.uuid4().hex}")
    await rig.publish(again)
    assert (await rig.results.wait(again["id"])).status == "failed"
