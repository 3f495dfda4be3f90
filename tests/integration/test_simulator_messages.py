"""The simulator's message API over real HTTP: send, duplicates, drops, /_sim/sent, faults."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest

from tests.support.simulator import SimClock, quiet_settings, serve_simulator

SEND = "/cgi-bin/message/send"
# Tests that move the clock by days keep their corp token valid meanwhile.
LONG_TOKENS = {"sim_token_ttl_s": 864_000}


def text(agentid: int, touser: str = "alice", content: str = "hello", **fields: Any) -> Any:
    return {
        "touser": touser,
        "msgtype": "text",
        "agentid": agentid,
        "text": {"content": content},
        **fields,
    }


async def test_send_answers_msgid_and_records_the_body() -> None:
    """A valid send answers errcode 0, a msgid and empty invalid lists; /_sim/sent has it."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        answer = await sim.corp_call(SEND, token, text(agentid))
        _, sent = await sim.call("GET", "/_sim/sent")
    assert answer["errcode"] == 0
    assert answer["msgid"]
    assert (answer["invaliduser"], answer["invalidparty"], answer["invalidtag"]) == ("", "", "")
    assert "response_code" not in answer
    [record] = sent["sent"]
    assert record["msgid"] == answer["msgid"]
    assert record["body"] == text(agentid)
    assert record["outcomes"] == {"alice": "delivered"}
    assert record["corp_id"] == "wwcorp1"


async def test_unknown_users_are_listed_and_all_invalid_is_81013() -> None:
    """Members outside the visible range go to invaliduser; nobody valid is 81013."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        partial = await sim.corp_call(SEND, token, text(agentid, touser="alice|Bob|carol"))
        none = await sim.corp_call(SEND, token, text(agentid, touser="bob"))
        _, sent = await sim.call("GET", "/_sim/sent")
    assert partial["errcode"] == 0
    assert partial["invaliduser"] == "bob|carol"
    assert (none["errcode"], none["invaliduser"]) == (81013, "bob")
    [record] = sent["sent"]  # the refused send is not recorded
    assert record["outcomes"] == {"alice": "delivered", "bob": "invalid", "carol": "invalid"}


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"msgtype": "sms"}, 40008),
        ({"agentid": None}, 40056),
        ({"agentid": 42}, 301002),
        ({"touser": ""}, 82001),
        ({"text": {"content": ""}}, 44004),
        ({"text": {"content": "x" * 2049}}, 45002),
        ({"msgtype": "image"}, 40058),
        ({"msgtype": "image", "image": {"media_id": "never-uploaded"}}, 40007),
    ],
)
async def test_send_refuses_bad_bodies(change: dict[str, Any], errcode: int) -> None:
    """Each malformed body gets WeCom's errcode and nothing is recorded."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        answer = await sim.corp_call(SEND, token, {**text(agentid), **change})
        _, sent = await sim.call("GET", "/_sim/sent")
    assert answer["errcode"] == errcode
    assert sent["sent"] == []


async def test_send_needs_a_corp_token() -> None:
    """No token is 41001; a suite token is not a corp token (40014)."""
    async with serve_simulator() as sim:
        suite = await sim.suite_token()
        _, missing = await sim.call("POST", SEND, body=text(1))
        wrong = await sim.corp_call(SEND, suite, text(1))
    assert (missing["errcode"], wrong["errcode"]) == (41001, 40014)


async def test_duplicate_check_accepts_but_does_not_deliver_again() -> None:
    """The same content within the interval answers 0 and is recorded as duplicate."""
    clock = SimClock()
    async with serve_simulator(clock=clock) as sim:
        token, agentid = await sim.corp_token()
        body = text(agentid, enable_duplicate_check=1, duplicate_check_interval=600)
        first = await sim.corp_call(SEND, token, body)
        second = await sim.corp_call(SEND, token, body)
        clock.advance(600)
        third = await sim.corp_call(SEND, token, body)
        _, sent = await sim.call("GET", "/_sim/sent")
    assert [a["errcode"] for a in (first, second, third)] == [0, 0, 0]
    assert first["msgid"] != second["msgid"]
    outcomes = [record["outcomes"]["alice"] for record in sent["sent"]]
    assert outcomes == ["delivered", "duplicate", "delivered"]


async def test_per_member_limit_drops_silently_and_records_it() -> None:
    """The 31st message to a member in a minute succeeds but is recorded dropped_limit."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        answers = [
            await sim.corp_call(SEND, token, text(agentid, content=f"n{i}")) for i in range(31)
        ]
        _, sent = await sim.call("GET", "/_sim/sent")
    assert {answer["errcode"] for answer in answers} == {0}
    outcomes = [record["outcomes"]["alice"] for record in sent["sent"]]
    assert outcomes == ["delivered"] * 30 + ["dropped_limit"]


async def test_limits_off_delivers_everything() -> None:
    """SIM_LIMITS=off switches the send limits off too."""
    async with serve_simulator(quiet_settings(sim_limits=False)) as sim:
        token, agentid = await sim.corp_token()
        for i in range(31):
            await sim.corp_call(SEND, token, text(agentid, content=f"n{i}"))
        _, sent = await sim.call("GET", "/_sim/sent")
    assert sent["sent"][-1]["outcomes"] == {"alice": "delivered"}


async def test_faults_apply_to_message_send_and_calls_are_counted() -> None:
    """An armed fault answers instead of the send, which is then neither delivered nor kept."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        status, _ = await sim.call("POST", "/_sim/faults", body={"path": SEND, "errcode": 45009})
        faulted = await sim.corp_call(SEND, token, text(agentid))
        after = await sim.corp_call(SEND, token, text(agentid))
        _, sent = await sim.call("GET", "/_sim/sent")
        _, calls = await sim.call("GET", "/_sim/calls")
    assert status == 201
    assert (faulted["errcode"], after["errcode"]) == (45009, 0)
    assert len(sent["sent"]) == 1
    assert calls["calls"][SEND] == 2


async def test_template_card_response_code_updates_once() -> None:
    """A button card answers a response_code that update_template_card takes exactly once."""
    card = {
        "card_type": "button_interaction",
        "task_id": "task1",
        "main_title": {"title": "Approve?"},
        "button_list": [{"text": "OK", "key": "ok"}],
    }
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        body = {"touser": "alice", "msgtype": "template_card", "agentid": agentid}
        sent = await sim.corp_call(SEND, token, {**body, "template_card": card})
        update = {
            "userids": ["alice", "bob"],
            "agentid": agentid,
            "response_code": sent["response_code"],
            "button": {"replace_name": "Done"},
        }
        first = await sim.corp_call("/cgi-bin/message/update_template_card", token, update)
        again = await sim.corp_call("/cgi-bin/message/update_template_card", token, update)
        other_agent = await sim.corp_call(
            "/cgi-bin/message/update_template_card", token, {**update, "agentid": 7}
        )
        _, records = await sim.call("GET", "/_sim/sent")
    assert sent["errcode"] == 0
    assert sent["response_code"]
    assert (first["errcode"], first["invaliduser"]) == (0, ["bob"])
    assert again["errcode"] == 40058
    assert other_agent["errcode"] == 42015
    assert records["sent"][0]["updates"][0]["button"] == {"replace_name": "Done"}


async def test_recall_once_within_a_day() -> None:
    """A sent message is recalled once; unknown msgids and late recalls are refused."""
    clock = SimClock()
    async with serve_simulator(quiet_settings(**LONG_TOKENS), clock=clock) as sim:
        token, agentid = await sim.corp_token()
        first = await sim.corp_call(SEND, token, text(agentid))
        late = await sim.corp_call(SEND, token, text(agentid, content="late"))
        recall = "/cgi-bin/message/recall"
        ok = await sim.corp_call(recall, token, {"msgid": first["msgid"]})
        twice = await sim.corp_call(recall, token, {"msgid": first["msgid"]})
        unknown = await sim.corp_call(recall, token, {"msgid": "nope"})
        clock.advance(24 * 3600)
        expired = await sim.corp_call(recall, token, {"msgid": late["msgid"]})
        _, sent = await sim.call("GET", "/_sim/sent")
    assert ok["errcode"] == 0
    assert [a["errcode"] for a in (twice, unknown, expired)] == [40058, 40058, 40058]
    assert [record["recalled"] for record in sent["sent"]] == [True, False]


async def upload(sim: Any, token: str, media_type: str, filename: str, data: bytes) -> Any:
    form = aiohttp.FormData()
    form.add_field(
        "media", io.BytesIO(data), filename=filename, content_type="application/octet-stream"
    )
    async with sim.session.post(
        sim.url("/cgi-bin/media/upload"),
        params={"access_token": token, "type": media_type},
        data=form,
    ) as response:
        return await response.json(content_type=None)


async def test_media_upload_answers_a_media_id_that_send_accepts() -> None:
    """An uploaded image answers type, media_id and a string created_at, usable in send."""
    clock = SimClock()
    async with serve_simulator(quiet_settings(**LONG_TOKENS), clock=clock) as sim:
        token, agentid = await sim.corp_token()
        answer = await upload(sim, token, "image", "cat.png", b"\x89PNG" + b"0" * 100)
        image = {"touser": "alice", "msgtype": "image", "agentid": agentid}
        sent = await sim.corp_call(
            SEND, token, {**image, "image": {"media_id": answer["media_id"]}}
        )
        clock.advance(3 * 86_400)
        stale = await sim.corp_call(
            SEND, token, {**image, "image": {"media_id": answer["media_id"]}}
        )
    assert answer["errcode"] == 0
    assert answer["type"] == "image"
    assert answer["created_at"] == str(int(SimClock().now))
    assert sent["errcode"] == 0
    assert stale["errcode"] == 40007


@pytest.mark.parametrize(
    ("media_type", "filename", "size", "errcode"),
    [
        ("sticker", "a.png", 100, 40005),
        ("voice", "a.mp3", 100, 40004),
        ("image", "a.png", 2 * 1024 * 1024 + 1, 40009),
        ("file", "a.txt", 3, 40006),
    ],
)
async def test_media_upload_refusals(
    media_type: str, filename: str, size: int, errcode: int
) -> None:
    """Bad type, wrong format and sizes over HTTP, with the image limit at 2 MB."""
    async with serve_simulator() as sim:
        token, _ = await sim.corp_token()
        answer = await upload(sim, token, media_type, filename, b"0" * size)
    assert answer["errcode"] == errcode


async def test_image_limit_is_configurable() -> None:
    """SIM_MEDIA_IMAGE_MAX_BYTES raises the image limit (the doc's 10 MB reading)."""
    settings = quiet_settings(sim_media_image_max_bytes=4 * 1024 * 1024)
    async with serve_simulator(settings) as sim:
        token, _ = await sim.corp_token()
        answer = await upload(sim, token, "image", "big.jpg", b"0" * (3 * 1024 * 1024))
    assert answer["errcode"] == 0


async def test_ip_allowlist_refuses_other_peers_with_60020() -> None:
    """With an allow-list every /cgi-bin/ call from elsewhere is 60020 naming the caller."""
    async with serve_simulator(quiet_settings(sim_ip_allowlist="10.1.2.3")) as sim:
        _, answer = await sim.call("GET", "/cgi-bin/service/get_pre_auth_code")
        _, send = await sim.call("POST", SEND, query={"access_token": "x"}, body={})
        control, _ = await sim.call("GET", "/_sim/sent")
    assert answer["errcode"] == 60020
    assert "from ip: 127.0.0.1" in answer["errmsg"]
    assert send["errcode"] == 60020
    assert control == 200  # the control API is ours, not WeCom's


async def test_ip_allowlist_lets_listed_peers_through() -> None:
    """A listed address (or pattern) passes the check."""
    async with serve_simulator(quiet_settings(sim_ip_allowlist="10.0.0.1,127.0.0.*")) as sim:
        _, answer = await sim.call("GET", "/cgi-bin/service/get_pre_auth_code")
    assert answer["errcode"] == 41001  # past the IP check, stopped by the missing token


async def test_reset_forgets_sent_messages() -> None:
    """/_sim/reset clears what /_sim/sent lists."""
    async with serve_simulator() as sim:
        token, agentid = await sim.corp_token()
        await sim.corp_call(SEND, token, text(agentid))
        await sim.call("POST", "/_sim/reset")
        _, sent = await sim.call("GET", "/_sim/sent")
    assert sent["sent"] == []
