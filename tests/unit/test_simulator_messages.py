"""The simulator's message domain: body validation, recipients, duplicates and send limits."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.installs import Corp, Member
from simulator.message_bodies import check_content, check_msgtype
from simulator.messages import (
    Outbox,
    SendLimits,
    SentMessage,
    content_key,
    duplicate_interval,
    resolve_recipients,
)
from simulator.state_types import WeComError
from tests.support.simulator import SimClock


def no_media(_: str) -> bool:
    return False


def corp(*installed: str) -> Corp:
    result = Corp("wwcorp", 1_000_002)
    for user in installed:
        result.members[user] = Member(user, f"wo{user}", installed=True)
    result.members["gone"] = Member("gone", "wogone", installed=False)
    return result


def text(content: str = "hi", **fields: Any) -> dict[str, Any]:
    return {
        "touser": "alice",
        "msgtype": "text",
        "agentid": 1,
        "text": {"content": content},
        **fields,
    }


def refusal(body: dict[str, Any], media_known: Any = no_media) -> int:
    with pytest.raises(WeComError) as caught:
        check_content(body, check_msgtype(body), media_known)
    return caught.value.errcode


@pytest.mark.parametrize("msgtype", [None, "", "sms", 3])
def test_unknown_msgtype_is_40008(msgtype: object) -> None:
    """A missing or unknown msgtype is WeCom's 'invalid message type'."""
    with pytest.raises(WeComError) as caught:
        check_msgtype({"msgtype": msgtype})
    assert caught.value.errcode == 40008


def test_text_content_rules() -> None:
    """Empty text is 44004, more than 2048 bytes is 45002, exactly 2048 bytes passes."""
    assert refusal(text("")) == 44004
    assert refusal({"msgtype": "text", "text": {}}) == 44004
    assert refusal(text("é" * 1025)) == 45002  # 2050 bytes, though 1025 characters
    assert check_content(text("a" * 2048), "text", no_media) is False


def test_the_msgtype_body_must_exist() -> None:
    """A body without the object its msgtype names is refused."""
    assert refusal({"msgtype": "text"}) == 40058


def test_media_messages_need_a_known_media_id() -> None:
    """41006 without media_id, 40007 for one this corp did not upload."""
    assert refusal({"msgtype": "image", "image": {}}) == 41006
    assert refusal({"msgtype": "file", "file": {"media_id": "nope"}}) == 40007
    body = {"msgtype": "voice", "voice": {"media_id": "m1"}}
    assert check_content(body, "voice", lambda media_id: media_id == "m1") is False


@pytest.mark.parametrize(
    ("news", "errcode"),
    [
        ({"articles": []}, 44003),
        ({"articles": [{"title": "t", "url": "https://x"}] * 9}, 45008),
        ({"articles": [{"url": "https://x"}]}, 41016),
        ({"articles": [{"title": "t"}]}, 41010),
        ({"articles": [{"title": "t" * 129, "url": "https://x"}]}, 45003),
    ],
)
def test_news_rules(news: dict[str, Any], errcode: int) -> None:
    """1–8 articles, each with a title (≤128 B) and a url."""
    assert refusal({"msgtype": "news", "news": news}) == errcode


def test_textcard_needs_title_description_and_url() -> None:
    """A textcard without url is 41010; btntxt is at most 4 characters."""
    card = {"title": "t", "description": "d"}
    assert refusal({"msgtype": "textcard", "textcard": card}) == 41010
    long_button = {**card, "url": "https://x", "btntxt": "12345"}
    assert refusal({"msgtype": "textcard", "textcard": long_button}) == 40058


def test_template_card_response_code_only_for_interactive_cards() -> None:
    """Buttons earn a response_code; a text notice without action_menu does not."""
    notice = {"card_type": "text_notice", "card_action": {"type": 1, "url": "https://x"}}
    buttons = {"card_type": "button_interaction", "task_id": "t1", "button_list": [{"key": "k"}]}
    assert check_content({"template_card": notice}, "template_card", no_media) is False
    assert check_content({"template_card": buttons}, "template_card", no_media) is True
    assert refusal({"msgtype": "template_card", "template_card": {"card_type": "x"}}) == 40058
    no_task = {**buttons, "task_id": None}
    assert refusal({"msgtype": "template_card", "template_card": no_task}) == 40058


def test_recipients_split_into_reached_and_invalid() -> None:
    """Installed members are reached; others are listed lower-cased; parties/tags invalid."""
    found = resolve_recipients(
        corp("alice"), {"touser": "alice|Bob|gone", "toparty": "2", "totag": 3}
    )
    assert found.users == ["alice"]
    assert found.invalid_users == ["bob", "gone"]
    assert (found.invalid_parties, found.invalid_tags) == (["2"], ["3"])


def test_all_recipient_lists_empty_is_82001() -> None:
    """No touser, toparty or totag at all is 82001."""
    with pytest.raises(WeComError) as caught:
        resolve_recipients(corp("alice"), {"touser": "", "toparty": ""})
    assert caught.value.errcode == 82001


def test_at_all_reaches_every_installed_member() -> None:
    """@all is the visible range: the installed members only."""
    assert resolve_recipients(corp("alice", "bob"), {"touser": "@all"}).users == ["alice", "bob"]


def test_duplicate_interval_defaults_and_clamps() -> None:
    """Off unless enabled; 1800 s by default; never more than 4 hours."""
    assert duplicate_interval({}) is None
    assert duplicate_interval({"enable_duplicate_check": 1}) == 1800
    assert duplicate_interval({"enable_duplicate_check": 1, "duplicate_check_interval": 10**6}) == (
        4 * 3600
    )


def test_content_key_ignores_recipients() -> None:
    """The same content to other recipients is the same content."""
    assert content_key(text(touser="a")) == content_key(text(touser="b|c"))
    assert content_key(text("one")) != content_key(text("two"))


def test_duplicate_within_interval_is_not_delivered_again() -> None:
    """Within the interval the same content is a duplicate; after it, delivered again."""
    clock = SimClock()
    outbox = Outbox(clock)
    member_corp = corp("alice")
    body = text(enable_duplicate_check=1, duplicate_check_interval=60)
    assert outbox.deliver(member_corp, body, ["alice"]) == {"alice": "delivered"}
    clock.advance(59)
    assert outbox.deliver(member_corp, body, ["alice"]) == {"alice": "duplicate"}
    assert outbox.deliver(member_corp, text("other"), ["alice"]) == {"alice": "delivered"}
    clock.advance(1)
    assert outbox.deliver(member_corp, body, ["alice"]) == {"alice": "delivered"}


def test_without_duplicate_check_the_same_content_is_delivered() -> None:
    """Without enable_duplicate_check every send is delivered."""
    outbox = Outbox(SimClock())
    outcomes = [outbox.deliver(corp("alice"), text(), ["alice"]) for _ in range(2)]
    assert outcomes == [{"alice": "delivered"}] * 2


def test_thirty_per_minute_then_dropped_per_member() -> None:
    """The 31st message in a minute is dropped for that member only; a minute later it flows."""
    clock = SimClock()
    outbox = Outbox(clock)
    member_corp = corp("alice", "bob")
    results = [outbox.deliver(member_corp, text(str(i)), ["alice"])["alice"] for i in range(31)]
    assert results.count("delivered") == 30
    assert results[-1] == "dropped_limit"
    assert outbox.deliver(member_corp, text("b"), ["bob"]) == {"bob": "delivered"}
    clock.advance(60)
    assert outbox.deliver(member_corp, text("later"), ["alice"]) == {"alice": "delivered"}


def test_hourly_limit_drops_the_excess_until_the_hour_passes() -> None:
    """With a small hourly window the excess is dropped until the hour has passed."""
    clock = SimClock()
    outbox = Outbox(clock, SendLimits(per_minute=None, per_hour=3))
    member_corp = corp("alice")
    for i in range(3):
        clock.advance(600)
        assert outbox.deliver(member_corp, text(str(i)), ["alice"]) == {"alice": "delivered"}
    assert outbox.deliver(member_corp, text("x"), ["alice"]) == {"alice": "dropped_limit"}
    clock.advance(2400)  # the first delivery is now an hour old
    assert outbox.deliver(member_corp, text("y"), ["alice"]) == {"alice": "delivered"}


def test_limits_off_never_drop() -> None:
    """SIM_LIMITS=off: no window applies."""
    outbox = Outbox(SimClock(), SendLimits(per_minute=None, per_hour=None))
    results = {outbox.deliver(corp("a"), text(str(i)), ["a"])["a"] for i in range(50)}
    assert results == {"delivered"}


def sent(outbox: Outbox, clock: SimClock, code: str | None = "rc1") -> SentMessage:
    message = SentMessage("m1", "wwcorp", 1_000_002, clock(), {}, {"alice": "delivered"}, [], [])
    message.response_code = code
    outbox.record(message)
    return message


def test_response_code_is_single_use_and_lasts_72_hours() -> None:
    """A response_code works once; an unused one is refused at 72 h."""
    clock = SimClock()
    outbox = Outbox(clock)
    sent(outbox, clock)
    assert outbox.use_response_code("rc1").msgid == "m1"
    with pytest.raises(WeComError):
        outbox.use_response_code("rc1")
    sent(outbox, clock, "rc2")
    clock.advance(72 * 3600)
    with pytest.raises(WeComError):
        outbox.use_response_code("rc2")


def test_recall_within_24_hours_once() -> None:
    """A message is recalled once, by its own corp, within 24 hours."""
    clock = SimClock()
    outbox = Outbox(clock)
    sent(outbox, clock)
    with pytest.raises(WeComError):
        outbox.recall(Corp("wwother", 1_000_003), "m1")
    assert outbox.recall(corp(), "m1").recalled
    with pytest.raises(WeComError):
        outbox.recall(corp(), "m1")
    with pytest.raises(WeComError):
        outbox.recall(corp(), "unknown")


def test_recall_after_24_hours_is_refused() -> None:
    """At 24 h the recall window is closed."""
    clock = SimClock()
    outbox = Outbox(clock)
    sent(outbox, clock)
    clock.advance(24 * 3600)
    with pytest.raises(WeComError) as caught:
        outbox.recall(corp(), "m1")
    assert caught.value.errcode == 40058
