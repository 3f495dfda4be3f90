"""Tests of the notification contract: validation against WeCom's limits, the WeCom bodies
built from a request, and the mapping of WeCom's answers onto results (shared/notify/,
notifier/wecom_body.py, notifier/domain.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.domain import expired_result, result_from_wecom_answer
from notifier.wecom_body import inline_media, to_wecom_body
from shared.errors import InvalidRequest
from shared.notify import (
    IMAGE_MAX_BYTES,
    MPNEWS_CONTENT_MAX_BYTES,
    InlineImage,
    NotifyRequest,
    NotifyRequestInvalid,
    NotifyResult,
    inline_media_key,
    parse_notify_request,
)

SECRET = "TOP-SECRET-CONTENT"
"""A marker put into message content: it must never show up in an error."""

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
AMR = b"#!AMR\n" + b"\x00" * 24
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 24
PDF = b"%PDF-1.4\n" + b"\x00" * 24


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def inline(filename: str, data: bytes) -> dict[str, str]:
    return {"filename": filename, "data": b64(data)}


def request(message: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid request around ``message``; ``fields`` replace top-level fields."""
    body: dict[str, Any] = {
        "id": "req-1",
        "corp_id": "wwcorp",
        "agent_id": None,
        "to": {"users": ["alice"], "parties": [], "tags": [], "all": False},
        "message": message,
        "options": {
            "safe": 0,
            "enable_id_trans": 0,
            "enable_duplicate_check": 0,
            "duplicate_check_interval": 1800,
        },
        "deadline": None,
    }
    body.update(fields)
    return body


def card(card_type: str, **fields: Any) -> dict[str, Any]:
    """A valid minimal template card of ``card_type``; ``fields`` replace or add fields."""
    minimal: dict[str, dict[str, Any]] = {
        "text_notice": {"card_action": {"type": 1, "url": "https://example.com"}},
        "news_notice": {
            "card_image": {"url": "https://example.com/a.png"},
            "card_action": {"type": 1, "url": "https://example.com"},
        },
        "button_interaction": {"task_id": "t1", "button_list": [{"text": "OK", "key": "ok"}]},
        "vote_interaction": {
            "task_id": "t1",
            "checkbox": {"question_key": "q", "option_list": [{"id": "o1", "text": "one"}]},
            "submit_button": {"text": "Submit", "key": "submit"},
        },
        "multiple_interaction": {
            "task_id": "t1",
            "select_list": [{"question_key": "q", "option_list": [{"id": "o1", "text": "one"}]}],
            "submit_button": {"text": "Submit", "key": "submit"},
        },
    }
    return {"card_type": card_type, **minimal[card_type], **fields}


def message(msgtype: str, block: dict[str, Any]) -> dict[str, Any]:
    return {"msgtype": msgtype, msgtype: block}


MINIMAL_MESSAGES: dict[str, dict[str, Any]] = {
    "text": message("text", {"content": "hello"}),
    "image": message("image", {"media_id": "MEDIA"}),
    "voice": message("voice", {"media_id": "MEDIA"}),
    "video": message("video", {"media_id": "MEDIA"}),
    "file": message("file", {"media_id": "MEDIA"}),
    "textcard": message(
        "textcard", {"title": "T", "description": "D", "url": "https://example.com"}
    ),
    "news": message("news", {"articles": [{"title": "T", "url": "https://example.com"}]}),
    "mpnews": message(
        "mpnews", {"articles": [{"title": "T", "thumb_media_id": "THUMB", "content": "<p>x</p>"}]}
    ),
    "markdown": message("markdown", {"content": "**hi**"}),
    "miniprogram_notice": message("miniprogram_notice", {"appid": "wxapp", "title": "T"}),
    "template_card/text_notice": message("template_card", card("text_notice")),
    "template_card/news_notice": message("template_card", card("news_notice")),
    "template_card/button_interaction": message("template_card", card("button_interaction")),
    "template_card/vote_interaction": message("template_card", card("vote_interaction")),
    "template_card/multiple_interaction": message("template_card", card("multiple_interaction")),
    "update_template_card": message(
        "update_template_card", {"response_code": "RC", "button": {"replace_name": "Done"}}
    ),
}


def error_of(body: dict[str, Any] | str | bytes) -> str:
    with pytest.raises(NotifyRequestInvalid) as caught:
        parse_notify_request(body)
    return caught.value.message


# --- Accepted messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MINIMAL_MESSAGES))
def test_every_msgtype_accepts_a_minimal_example(name: str) -> None:
    """Each msgtype and card type WeCom accepts has a valid minimal form."""
    parsed = parse_notify_request(request(MINIMAL_MESSAGES[name]))
    assert parsed.message.msgtype == name.partition("/")[0]


def test_recall_is_accepted_without_recipients() -> None:
    """A recall targets a msgid, not people."""
    parsed = parse_notify_request(request(message("recall", {"msgid": "M1"}), to={}))
    assert parsed.message.msgtype == "recall"


def test_json_text_and_bytes_parse_like_a_mapping() -> None:
    """The bus delivers bytes; the gateway may hold text or a decoded mapping."""
    body = request(MINIMAL_MESSAGES["text"])
    as_text = json.dumps(body)
    assert parse_notify_request(as_text) == parse_notify_request(body)
    assert parse_notify_request(as_text.encode()) == parse_notify_request(body)


def test_a_request_survives_a_json_round_trip() -> None:
    """What a producer dumps (inline bytes as base64) is what the notifier parses back."""
    original = parse_notify_request(
        request(message("image", {"inline": inline("a.png", PNG)}), deadline="2030-01-01T00:00Z")
    )
    again = parse_notify_request(original.model_dump_json())
    assert again == original


def test_defaults_match_the_design() -> None:
    """Options default to WeCom's defaults, the duplicate check to unset (null: the notifier
    decides); agent_id and deadline to null."""
    parsed = parse_notify_request(
        {"id": "r", "corp_id": "c", "to": {"users": ["u"]}, "message": MINIMAL_MESSAGES["text"]}
    )
    assert parsed.agent_id is None
    assert parsed.deadline is None
    assert parsed.options.model_dump() == {
        "safe": 0,
        "enable_id_trans": 0,
        "enable_duplicate_check": None,
        "duplicate_check_interval": None,
    }


def test_the_error_is_an_invalid_request() -> None:
    """The gateway maps it to a 400 like any InvalidRequest."""
    with pytest.raises(InvalidRequest) as caught:
        parse_notify_request(b"{")
    assert caught.value.status == 400
    assert caught.value.message.startswith("body: invalid JSON")


# --- Limits: one wrong field, one precise message ------------------------------------------------


def text_of(size: int) -> str:
    return SECRET + "x" * (size - len(SECRET))


def many(count: int, item: Callable[[int], Any]) -> list[Any]:
    return [item(i) for i in range(count)]


def tc(**fields: Any) -> dict[str, Any]:
    """A text_notice card with ``fields``."""
    return message("template_card", card("text_notice", **fields))


LIMIT_CASES: list[tuple[str, dict[str, Any], str]] = [
    # text and markdown
    (
        "text too long",
        request(message("text", {"content": text_of(2049)})),
        "message.text.content: exceeds 2048 bytes (got 2049)",
    ),
    (
        "text empty",
        request(message("text", {"content": ""})),
        "message.text.content: must not be empty",
    ),
    (
        "markdown too long",
        request(message("markdown", {"content": text_of(2049)})),
        "message.markdown.content: exceeds 2048 bytes (got 2049)",
    ),
    # video
    (
        "video title",
        request(message("video", {"media_id": "M", "title": text_of(129)})),
        "message.video.title: exceeds 128 bytes (got 129)",
    ),
    (
        "video description",
        request(message("video", {"media_id": "M", "description": text_of(513)})),
        "message.video.description: exceeds 512 bytes (got 513)",
    ),
    # textcard
    (
        "textcard title",
        request(
            message("textcard", {"title": text_of(129), "description": "d", "url": "https://a"})
        ),
        "message.textcard.title: exceeds 128 bytes (got 129)",
    ),
    (
        "textcard description in bytes",
        request(message("textcard", {"title": "t", "description": "é" * 257, "url": "https://a"})),
        "message.textcard.description: exceeds 512 bytes (got 514)",
    ),
    (
        "textcard url scheme",
        request(message("textcard", {"title": "t", "description": "d", "url": "example.com"})),
        "message.textcard.url: must be an http:// or https:// URL",
    ),
    (
        "textcard url length",
        request(
            message(
                "textcard",
                {"title": "t", "description": "d", "url": "https://" + "a" * 2041},
            )
        ),
        "message.textcard.url: exceeds 2048 bytes (got 2049)",
    ),
    (
        "textcard btntxt in characters",
        request(
            message(
                "textcard",
                {"title": "t", "description": "d", "url": "https://a", "btntxt": "详情详情详"},
            )
        ),
        "message.textcard.btntxt: exceeds 4 characters (got 5)",
    ),
    # news
    (
        "news nine articles",
        request(
            message("news", {"articles": many(9, lambda i: {"title": "t", "url": "https://a"})})
        ),
        "message.news.articles: list should have at most 8 items after validation, not 9",
    ),
    (
        "news no article",
        request(message("news", {"articles": []})),
        "message.news.articles: list should have at least 1 item after validation, not 0",
    ),
    (
        "news article title",
        request(message("news", {"articles": [{"title": text_of(129), "url": "https://a"}]})),
        "message.news.articles[0].title: exceeds 128 bytes (got 129)",
    ),
    (
        "news article without target",
        request(message("news", {"articles": [{"title": "t"}]})),
        "message.news.articles[0]: url or appid is required",
    ),
    (
        "news pagepath without appid",
        request(
            message("news", {"articles": [{"title": "t", "url": "https://a", "pagepath": "p"}]})
        ),
        "message.news.articles[0]: pagepath needs appid",
    ),
    (
        "news picurl length",
        request(
            message(
                "news",
                {
                    "articles": [
                        {"title": "t", "url": "https://a", "picurl": "https://" + "p" * 2041}
                    ]
                },
            )
        ),
        "message.news.articles[0].picurl: exceeds 2048 bytes (got 2049)",
    ),
    # mpnews
    (
        "mpnews content",
        request(
            message(
                "mpnews",
                {
                    "articles": [
                        {
                            "title": "t",
                            "thumb_media_id": "M",
                            "content": text_of(MPNEWS_CONTENT_MAX_BYTES + 1),
                        }
                    ]
                },
            )
        ),
        f"message.mpnews.articles[0].content: exceeds {MPNEWS_CONTENT_MAX_BYTES} bytes "
        f"(got {MPNEWS_CONTENT_MAX_BYTES + 1})",
    ),
    (
        "mpnews without thumb",
        request(message("mpnews", {"articles": [{"title": "t", "content": "c"}]})),
        "message.mpnews.articles[0]: exactly one of thumb_media_id or thumb is required",
    ),
    (
        "mpnews both thumbs",
        request(
            message(
                "mpnews",
                {
                    "articles": [
                        {
                            "title": "t",
                            "content": "c",
                            "thumb_media_id": "M",
                            "thumb": inline("t.png", PNG),
                        }
                    ]
                },
            )
        ),
        "message.mpnews.articles[0]: exactly one of thumb_media_id or thumb is required",
    ),
    # miniprogram_notice
    (
        "miniprogram eleven items",
        request(
            message(
                "miniprogram_notice",
                {
                    "appid": "wx",
                    "title": "t",
                    "content_item": many(11, lambda i: {"key": f"k{i}", "value": "v"}),
                },
            )
        ),
        "message.miniprogram_notice.content_item: list should have at most 10 items after "
        "validation, not 11",
    ),
    # template_card: common fields
    (
        "task_id characters",
        request(tc(task_id="bad id!")),
        "message.template_card.task_id: may contain only 0-9, A-Z, a-z, _, - and @",
    ),
    (
        "task_id length",
        request(tc(task_id="t" * 129)),
        "message.template_card.task_id: exceeds 128 bytes (got 129)",
    ),
    (
        "action_menu without task_id",
        request(tc(action_menu={"action_list": [{"text": "a", "key": "k"}]})),
        "message.template_card: task_id is required with action_menu",
    ),
    (
        "action_menu four actions",
        request(
            tc(
                task_id="t",
                action_menu={"action_list": many(4, lambda i: {"text": "a", "key": f"k{i}"})},
            )
        ),
        "message.template_card.action_menu.action_list: list should have at most 3 items after "
        "validation, not 4",
    ),
    (
        "horizontal content seven",
        request(tc(horizontal_content_list=many(7, lambda i: {"keyname": "k"}))),
        "message.template_card.horizontal_content_list: list should have at most 6 items after "
        "validation, not 7",
    ),
    (
        "horizontal content member without userid",
        request(tc(horizontal_content_list=[{"type": 3, "keyname": "k"}])),
        "message.template_card.horizontal_content_list[0]: userid is required when type is 3",
    ),
    (
        "jump list four",
        request(tc(jump_list=many(4, lambda i: {"title": "j"}))),
        "message.template_card.jump_list: list should have at most 3 items after validation, not 4",
    ),
    (
        "source colour",
        request(tc(source={"desc_color": 4})),
        "message.template_card.source.desc_color: input should be 0, 1, 2 or 3",
    ),
    (
        "quote area url",
        request(tc(quote_area={"type": 1})),
        "message.template_card.quote_area: url is required when type is 1",
    ),
    # template_card: per card type
    (
        "text_notice without card_action",
        request(message("template_card", {"card_type": "text_notice"})),
        "message.template_card.card_action: is required",
    ),
    (
        "text_notice card_action type 0",
        request(tc(card_action={"type": 0})),
        "message.template_card: card_action.type must be 1 (url) or 2 (mini-program)",
    ),
    (
        "news_notice without image",
        request(
            message(
                "template_card",
                {"card_type": "news_notice", "card_action": {"type": 1, "url": "https://a"}},
            )
        ),
        "message.template_card: card_image or image_text_area is required",
    ),
    (
        "news_notice aspect ratio",
        request(
            message(
                "template_card",
                card("news_notice", card_image={"url": "https://a", "aspect_ratio": 2.3}),
            )
        ),
        "message.template_card.card_image.aspect_ratio: input should be less than or equal to 2.25",
    ),
    (
        "news_notice five vertical contents",
        request(
            message(
                "template_card",
                card("news_notice", vertical_content_list=many(5, lambda i: {"title": "v"})),
            )
        ),
        "message.template_card.vertical_content_list: list should have at most 4 items after "
        "validation, not 5",
    ),
    (
        "button_interaction without task_id",
        request(
            message(
                "template_card",
                {"card_type": "button_interaction", "button_list": [{"text": "a", "key": "k"}]},
            )
        ),
        "message.template_card: task_id is required for button_interaction",
    ),
    (
        "button_interaction seven buttons",
        request(
            message(
                "template_card",
                card(
                    "button_interaction",
                    button_list=many(7, lambda i: {"text": "b", "key": f"k{i}"}),
                ),
            )
        ),
        "message.template_card.button_list: list should have at most 6 items after "
        "validation, not 7",
    ),
    (
        "button key length",
        request(
            message(
                "template_card",
                card("button_interaction", button_list=[{"text": "b", "key": "k" * 1025}]),
            )
        ),
        "message.template_card.button_list[0].key: exceeds 1024 bytes (got 1025)",
    ),
    (
        "button style",
        request(
            message(
                "template_card",
                card("button_interaction", button_list=[{"text": "b", "key": "k", "style": 5}]),
            )
        ),
        "message.template_card.button_list[0].style: input should be 1, 2, 3 or 4",
    ),
    (
        "button keys unique",
        request(
            message(
                "template_card",
                card(
                    "button_interaction",
                    button_list=[{"text": "a", "key": "k"}, {"text": "b", "key": "k"}],
                ),
            )
        ),
        "message.template_card: button keys must be unique",
    ),
    (
        "button url",
        request(
            message(
                "template_card",
                card("button_interaction", button_list=[{"text": "b", "type": 1}]),
            )
        ),
        "message.template_card.button_list[0]: url is required when type is 1",
    ),
    (
        "button selection eleven options",
        request(
            message(
                "template_card",
                card(
                    "button_interaction",
                    button_selection={
                        "question_key": "q",
                        "option_list": many(11, lambda i: {"id": f"o{i}", "text": "o"}),
                    },
                ),
            )
        ),
        "message.template_card.button_selection.option_list: list should have at most 10 "
        "items after validation, not 11",
    ),
    (
        "option id length",
        request(
            message(
                "template_card",
                card(
                    "button_interaction",
                    button_selection={
                        "question_key": "q",
                        "option_list": [{"id": "o" * 129, "text": "o"}],
                    },
                ),
            )
        ),
        "message.template_card.button_selection.option_list[0].id: exceeds 128 bytes (got 129)",
    ),
    (
        "vote twenty-one options",
        request(
            message(
                "template_card",
                card(
                    "vote_interaction",
                    checkbox={
                        "question_key": "q",
                        "option_list": many(21, lambda i: {"id": f"o{i}", "text": "o"}),
                    },
                ),
            )
        ),
        "message.template_card.checkbox.option_list: list should have at most 20 items after "
        "validation, not 21",
    ),
    (
        "vote question key length",
        request(
            message(
                "template_card",
                card(
                    "vote_interaction",
                    checkbox={
                        "question_key": "q" * 1025,
                        "option_list": [{"id": "o", "text": "o"}],
                    },
                ),
            )
        ),
        "message.template_card.checkbox.question_key: exceeds 1024 bytes (got 1025)",
    ),
    (
        "vote without submit button",
        request(
            message(
                "template_card",
                {
                    "card_type": "vote_interaction",
                    "task_id": "t",
                    "checkbox": {"question_key": "q", "option_list": [{"id": "o", "text": "o"}]},
                },
            )
        ),
        "message.template_card.submit_button: is required",
    ),
    (
        "multiple four selects",
        request(
            message(
                "template_card",
                card(
                    "multiple_interaction",
                    select_list=many(
                        4,
                        lambda i: {
                            "question_key": f"q{i}",
                            "option_list": [{"id": "o", "text": "o"}],
                        },
                    ),
                ),
            )
        ),
        "message.template_card.select_list: list should have at most 3 items after validation, "
        "not 4",
    ),
    (
        "unknown card type",
        request(message("template_card", {"card_type": "mystery"})),
        "message.template_card: unknown 'card_type'; expected one of 'text_notice', "
        "'news_notice', 'button_interaction', 'vote_interaction', 'multiple_interaction'",
    ),
    # operations
    (
        "update with button and card",
        request(
            message(
                "update_template_card",
                {
                    "response_code": "RC",
                    "button": {"replace_name": "x"},
                    "template_card": card("text_notice"),
                },
            )
        ),
        "message.update_template_card: exactly one of button or template_card is required",
    ),
    (
        "update replace_text without card",
        request(
            message(
                "update_template_card",
                {"response_code": "RC", "button": {"replace_name": "x"}, "replace_text": "y"},
            )
        ),
        "message.update_template_card: replace_text needs template_card",
    ),
    (
        "update card error path",
        request(
            message(
                "update_template_card",
                {"response_code": "RC", "template_card": card("text_notice", task_id="a b")},
            )
        ),
        "message.update_template_card.template_card.task_id: may contain only 0-9, A-Z, a-z, "
        "_, - and @",
    ),
    (
        "recall with recipients",
        request(message("recall", {"msgid": "M"})),
        "to: recall takes no recipients",
    ),
    (
        "recall empty msgid",
        request(message("recall", {"msgid": ""}), to={}),
        "message.recall.msgid: must not be empty",
    ),
    (
        "unknown msgtype",
        request({"msgtype": "mystery"}),
        "message: unknown 'msgtype'; expected one of 'text', 'image', 'voice', 'video', 'file', "
        "'textcard', 'news', 'mpnews', 'markdown', 'miniprogram_notice', 'template_card', "
        "'update_template_card', 'recall'",
    ),
    ("missing msgtype", request({"text": {"content": "x"}}), "message: 'msgtype' is required"),
    (
        "unknown field in a message",
        request({**MINIMAL_MESSAGES["text"], "txt": {}}),
        "message.txt: is not a known field",
    ),
    # recipients
    (
        "1001 users",
        request(MINIMAL_MESSAGES["text"], to={"users": many(1001, lambda i: f"u{i}")}),
        "to.users: list should have at most 1000 items after validation, not 1001",
    ),
    (
        "101 parties",
        request(MINIMAL_MESSAGES["text"], to={"parties": many(101, lambda i: i + 1)}),
        "to.parties: list should have at most 100 items after validation, not 101",
    ),
    (
        "101 tags",
        request(MINIMAL_MESSAGES["text"], to={"tags": many(101, lambda i: i + 1)}),
        "to.tags: list should have at most 100 items after validation, not 101",
    ),
    (
        "user with a pipe",
        request(MINIMAL_MESSAGES["text"], to={"users": ["a", "b|c"]}),
        "to.users[1]: must not contain '|' (WeCom's list separator)",
    ),
    (
        "user @all",
        request(MINIMAL_MESSAGES["text"], to={"users": ["@all"]}),
        "to.users[0]: use to.all=true instead of '@all'",
    ),
    (
        "party not numeric",
        request(MINIMAL_MESSAGES["text"], to={"parties": ["sales"]}),
        "to.parties[0]: must be a numeric id (a 32-bit unsigned integer)",
    ),
    (
        "all with users",
        request(MINIMAL_MESSAGES["text"], to={"all": True, "users": ["a"]}),
        "to: all=true must not be combined with users, parties or tags",
    ),
    (
        "no recipient",
        request(MINIMAL_MESSAGES["text"], to={}),
        "to: at least one of users, parties, tags or all=true is required",
    ),
    # options and envelope fields
    (
        "safe 2",
        request(MINIMAL_MESSAGES["text"], options={"safe": 2}),
        "options.safe: input should be 0 or 1",
    ),
    (
        "interval 0",
        request(MINIMAL_MESSAGES["text"], options={"duplicate_check_interval": 0}),
        "options.duplicate_check_interval: input should be greater than or equal to 1",
    ),
    (
        "interval above 4 h",
        request(MINIMAL_MESSAGES["text"], options={"duplicate_check_interval": 14401}),
        "options.duplicate_check_interval: input should be less than or equal to 14400",
    ),
    (
        "empty id",
        request(MINIMAL_MESSAGES["text"], id=""),
        "id: string should have at least 1 character",
    ),
    (
        "long id",
        request(MINIMAL_MESSAGES["text"], id="i" * 129),
        "id: string should have at most 128 characters",
    ),
    (
        "id with a space",
        request(MINIMAL_MESSAGES["text"], id="a b"),
        "id: string should match pattern '^[\\x21-\\x7e]+$'",
    ),
    (
        "agent_id 0",
        request(MINIMAL_MESSAGES["text"], agent_id=0),
        "agent_id: input should be greater than 0",
    ),
    (
        "naive deadline",
        request(MINIMAL_MESSAGES["text"], deadline="2030-01-01T00:00:00"),
        "deadline: input should have timezone info",
    ),
    (
        "missing corp_id",
        {k: v for k, v in request(MINIMAL_MESSAGES["text"]).items() if k != "corp_id"},
        "corp_id: is required",
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [pytest.param(body, expected, id=name) for name, body, expected in LIMIT_CASES],
)
def test_one_violated_limit_gives_one_precise_message(body: dict[str, Any], expected: str) -> None:
    """The caller learns which field is wrong and by how much, and nothing else."""
    assert error_of(body) == expected


def test_every_problem_is_reported_at_once() -> None:
    """A caller fixes all its mistakes in one round trip."""
    error = error_of(
        request(MINIMAL_MESSAGES["text"], id="", options={"safe": 3}, deadline="nonsense")
    )
    assert error.split("; ")[0] == "id: string should have at least 1 character"
    assert "options.safe: input should be 0 or 1" in error
    assert error.count("; ") == 2


def test_problems_are_available_as_pairs() -> None:
    """Edges that render errors differently get (path, problem) pairs."""
    with pytest.raises(NotifyRequestInvalid) as caught:
        parse_notify_request(request(message("text", {"content": ""})))
    assert caught.value.problems == (("message.text.content", "must not be empty"),)


# --- Content never leaks into errors --------------------------------------------------------------


LEAKY_BODIES: list[dict[str, Any]] = [
    request(message("text", {"content": SECRET * 200})),
    request(message("text", {"content": SECRET}), to={}),
    request(message("text", {"content": 12})),
    request(message("markdown", {"content": [SECRET]})),
    request(message("textcard", {"title": SECRET * 20, "description": SECRET, "url": SECRET})),
    request({"msgtype": SECRET, SECRET: {}}),
    request(message("template_card", {"card_type": SECRET})),
    request(message("image", {"inline": {"filename": "a.png", "data": SECRET}})),
    request(
        message("file", {"inline": {"filename": f"{SECRET}.exe", "data": b64(PDF)}}),
        options={"safe": 1},
    ),
    request(message("text", {"content": "x"}), to={"users": [SECRET + "|"]}),
    request(message("text", {"content": "x"}), id=SECRET + " "),
    request(message("text", {"content": "x"}), deadline=SECRET),
]


@pytest.mark.parametrize("body", LEAKY_BODIES)
def test_errors_never_echo_submitted_values(body: dict[str, Any]) -> None:
    """Content is a secret: errors carry paths and sizes, never values (design.md rules)."""
    error = error_of(body)
    assert SECRET not in error
    assert SECRET not in error_of(json.dumps(body))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=1200))
def test_text_limit_counts_utf8_bytes(content: str) -> None:
    """2048 is a byte limit: multibyte text hits it with fewer characters."""
    size = len(content.encode("utf-8"))
    body = request(message("text", {"content": content}))
    if 1 <= size <= 2048:
        assert parse_notify_request(body).message.msgtype == "text"
    else:
        expected = "must not be empty" if size == 0 else f"exceeds 2048 bytes (got {size})"
        assert error_of(body) == f"message.text.content: {expected}"


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x80, exclude_categories=["Cs"]),
        min_size=43,
        max_size=200,
    )
)
def test_title_limit_counts_utf8_bytes_and_never_echoes(title: str) -> None:
    """Titles over 128 bytes are refused by byte count, however few characters they are."""
    size = len(title.encode("utf-8"))
    body = request(message("news", {"articles": [{"title": title, "url": "https://a"}]}))
    if size <= 128:
        parse_notify_request(body)
    else:
        error = error_of(body)
        assert error == f"message.news.articles[0].title: exceeds 128 bytes (got {size})"
        assert title not in error


def test_lone_surrogates_are_refused_without_crashing() -> None:
    """A decoded mapping can hold a lone surrogate; it is not text WeCom can take."""
    body = request(message("text", {"content": SECRET + "\ud800"}))
    assert error_of(body) == "message.text.content: is not valid unicode text"
    # pydantic's JSON parser refuses the escape itself, without echoing the document.
    as_json = json.dumps(body)
    assert error_of(as_json).startswith("body: invalid JSON:")
    assert SECRET not in error_of(as_json)


# --- Media: media_id or inline ------------------------------------------------------------------


MEDIA_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "both",
        message("image", {"media_id": "M", "inline": inline("a.png", PNG)}),
        "message.image: exactly one of media_id or inline is required",
    ),
    (
        "neither",
        message("voice", {}),
        "message.voice: exactly one of media_id or inline is required",
    ),
    (
        "invalid base64",
        message("file", {"inline": {"filename": "a.pdf", "data": "not base64!"}}),
        "message.file.inline.data: is not valid base64",
    ),
    (
        "base64 without padding",
        message("file", {"inline": {"filename": "a.pdf", "data": b64(PDF).rstrip("=") + "A"}}),
        "message.file.inline.data: is not valid base64",
    ),
    (
        "too small",
        message("file", {"inline": inline("a.txt", b"12345")}),
        "message.file.inline.data: must be at least 6 bytes (got 5)",
    ),
    (
        "image too large",
        message(
            "image", {"inline": inline("a.png", PNG + b"\x00" * (IMAGE_MAX_BYTES - len(PNG) + 1))}
        ),
        f"message.image.inline.data: exceeds {IMAGE_MAX_BYTES} bytes (got {IMAGE_MAX_BYTES + 1})",
    ),
    (
        "image extension",
        message("image", {"inline": inline("a.gif", PNG)}),
        "message.image.inline.filename: image must have one of the extensions jpeg, jpg, png",
    ),
    (
        "image format",
        message("image", {"inline": inline("a.jpg", PDF)}),
        "message.image.inline.data: is not JPEG or PNG data",
    ),
    (
        "voice format",
        message("voice", {"inline": inline("a.amr", MP4)}),
        "message.voice.inline.data: is not AMR data",
    ),
    (
        "voice extension",
        message("voice", {"inline": inline("a.mp3", AMR)}),
        "message.voice.inline.filename: voice must have one of the extensions amr",
    ),
    (
        "video format",
        message("video", {"inline": inline("a.mp4", PNG)}),
        "message.video.inline.data: is not MP4 data",
    ),
    (
        "file name with a path",
        message("file", {"inline": inline("../a.pdf", PDF)}),
        "message.file.inline.filename: must be a bare file name (no path separators or "
        "control characters)",
    ),
    (
        "mpnews thumb format",
        message(
            "mpnews",
            {"articles": [{"title": "t", "content": "c", "thumb": inline("t.png", PDF)}]},
        ),
        "message.mpnews.articles[0].thumb.data: is not JPEG or PNG data",
    ),
]


@pytest.mark.parametrize(
    ("msg", "expected"), [pytest.param(m, e, id=name) for name, m, e in MEDIA_CASES]
)
def test_media_errors_are_precise(msg: dict[str, Any], expected: str) -> None:
    """media_id and inline are exclusive; inline bytes meet media/upload's limits."""
    assert error_of(request(msg)) == expected


@pytest.mark.parametrize(
    ("msgtype", "filename", "data"),
    [
        ("image", "a.jpg", JPEG),
        ("image", "a.PNG", PNG),
        ("voice", "a.amr", AMR),
        ("video", "a.mp4", MP4),
        ("file", "a.bin", b"\x01" * 10),
    ],
)
def test_inline_media_of_each_type_is_accepted(msgtype: str, filename: str, data: bytes) -> None:
    """Each media/upload type accepts its own formats."""
    parsed = parse_notify_request(request(message(msgtype, {"inline": inline(filename, data)})))
    (upload,) = inline_media(parsed)
    assert (upload.type, upload.filename, upload.data) == (msgtype, filename, data)


def test_safe_files_are_limited_to_the_listed_types() -> None:
    """With safe=1 WeCom delivers only some file types; others are refused up front."""
    exe = request(message("file", {"inline": inline("a.exe", PDF)}), options={"safe": 1})
    assert error_of(exe) == (
        "message.file.inline.filename: with options.safe=1 WeCom takes only bmp, doc, docx, gif, "
        "jpeg, jpg, pdf, png, ppt, pptx, txt, xls, xlsx, xml files (got .exe)"
    )
    pdf = request(message("file", {"inline": inline("a.pdf", PDF)}), options={"safe": 1})
    assert parse_notify_request(pdf).options.safe == 1


def test_inline_uploads_are_deduplicated_by_key() -> None:
    """The same thumbnail in two articles is uploaded once."""
    article = {"title": "t", "content": "c", "thumb": inline("t.png", PNG)}
    other = {"title": "u", "content": "c", "thumb": inline("u.png", PNG)}
    parsed = parse_notify_request(
        request(message("mpnews", {"articles": [article, article, other]}))
    )
    uploads = inline_media(parsed)
    assert [u.filename for u in uploads] == ["t.png", "u.png"]
    assert len({u.key for u in uploads}) == 2


def test_inline_media_key_is_stable_and_depends_on_type_name_and_bytes() -> None:
    """The key is a content hash: equal inputs give equal keys across processes."""
    media = InlineImage(filename="a.png", data=PNG)
    assert inline_media_key(media) == inline_media_key(InlineImage(filename="a.png", data=PNG))
    assert len(inline_media_key(media)) == 64
    assert inline_media_key(media) != inline_media_key(InlineImage(filename="b.png", data=PNG))
    assert inline_media_key(media) != inline_media_key(
        InlineImage(filename="a.png", data=PNG + b"\x00")
    )


def test_inline_upload_repr_hides_the_bytes() -> None:
    """An upload in a log line or traceback shows its size, not its content."""
    parsed = parse_notify_request(
        request(message("file", {"inline": inline("a.txt", SECRET.encode())}))
    )
    (upload,) = inline_media(parsed)
    assert SECRET not in repr(upload)
    assert f"size={len(SECRET)}" in repr(upload)


def test_no_inline_media_gives_no_upload() -> None:
    """A media_id needs no upload."""
    assert inline_media(parse_notify_request(request(MINIMAL_MESSAGES["image"]))) == []


# --- The WeCom body ------------------------------------------------------------------------------


def build(body: dict[str, Any], media_ids: dict[str, str] | None = None) -> dict[str, Any]:
    return to_wecom_body(parse_notify_request(body), agent_id=1000002, media_ids=media_ids or {})


def test_send_body_of_a_text_message_has_every_common_field() -> None:
    """§11.1: pipe-joined ids, msgtype, agentid, the block and the four options."""
    body = build(
        request(
            message("text", {"content": "hi"}),
            to={"users": ["UserID1", "UserID2"], "parties": [1, "2"], "tags": ["3", 4]},
            options={
                "safe": 1,
                "enable_id_trans": 1,
                "enable_duplicate_check": 1,
                "duplicate_check_interval": 600,
            },
        )
    )
    assert body == {
        "touser": "UserID1|UserID2",
        "toparty": "1|2",
        "totag": "3|4",
        "msgtype": "text",
        "agentid": 1000002,
        "text": {"content": "hi"},
        "safe": 1,
        "enable_id_trans": 1,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 600,
    }


def test_all_becomes_at_all_without_lists() -> None:
    """@all addresses the whole visible range; toparty/totag would be ignored anyway."""
    body = build(request(MINIMAL_MESSAGES["markdown"], to={"all": True}))
    assert body["touser"] == "@all"
    assert "toparty" not in body
    assert "totag" not in body


def test_empty_lists_are_left_out() -> None:
    """Only the recipient kinds given appear."""
    body = build(request(MINIMAL_MESSAGES["text"], to={"parties": [7]}))
    assert body["toparty"] == "7"
    assert "touser" not in body
    assert "totag" not in body


def test_textcard_block_matches_the_protocol() -> None:
    """§11.2 textcard: title, description, url, btntxt."""
    block = {
        "title": "领奖通知",
        "description": '<div class="gray">2016年9月26日</div>',
        "url": "https://example.com",
        "btntxt": "更多",
    }
    assert build(request(message("textcard", block)))["textcard"] == block


def test_news_block_matches_the_protocol() -> None:
    """§11.2 news: articles with title, description, url, picurl, appid, pagepath."""
    article = {
        "title": "中秋节礼品领取",
        "description": "今年中秋节公司有豪礼相送",
        "url": "https://example.com",
        "picurl": "https://example.com/a.png",
        "appid": "wx123123123123123",
        "pagepath": "pages/index?userid=zhangsan",
    }
    assert build(request(message("news", {"articles": [article]})))["news"] == {
        "articles": [article]
    }


def test_inline_media_are_replaced_by_their_media_ids() -> None:
    """The uploaded media_id takes the place of the inline bytes, for media and thumbs."""
    video = request(message("video", {"inline": inline("v.mp4", MP4), "title": "T"}))
    (upload,) = inline_media(parse_notify_request(video))
    assert build(video, {upload.key: "MEDIA_ID"})["video"] == {"media_id": "MEDIA_ID", "title": "T"}

    mpnews = request(
        message(
            "mpnews",
            {
                "articles": [
                    {
                        "title": "T",
                        "thumb": inline("t.jpg", JPEG),
                        "author": "A",
                        "content_source_url": "https://a",
                        "content": "C",
                        "digest": "D",
                    }
                ]
            },
        )
    )
    (thumb,) = inline_media(parse_notify_request(mpnews))
    assert build(mpnews, {thumb.key: "THUMB_ID"})["mpnews"] == {
        "articles": [
            {
                "title": "T",
                "thumb_media_id": "THUMB_ID",
                "author": "A",
                "content_source_url": "https://a",
                "content": "C",
                "digest": "D",
            }
        ]
    }


def test_a_missing_media_id_is_a_key_error() -> None:
    """Sending without the upload would send nothing useful: fail loudly instead."""
    with pytest.raises(KeyError, match="no media_id was given for inline image"):
        build(request(message("image", {"inline": inline("a.png", PNG)})))


def test_media_id_is_passed_through() -> None:
    """A media_id given by the caller is used as it is."""
    for msgtype in ("image", "voice", "file"):
        assert build(request(MINIMAL_MESSAGES[msgtype]))[msgtype] == {"media_id": "MEDIA"}


def test_miniprogram_notice_block() -> None:
    """§11.2 miniprogram_notice: the fields under their WeCom names."""
    block = {
        "appid": "wx123",
        "page": "pages/index",
        "title": "会议室预订成功通知",
        "description": "4月27日 16:16",
        "emphasis_first_item": True,
        "content_item": [{"key": "会议室", "value": "402"}],
    }
    assert build(request(message("miniprogram_notice", block)))["miniprogram_notice"] == block


def test_template_card_block_keeps_card_type_and_fields() -> None:
    """§11.3: the card is sent as given, card_type included."""
    given_card = card(
        "button_interaction",
        source={"icon_url": "https://a/icon.png", "desc": "企业微信", "desc_color": 1},
        main_title={"title": "欢迎使用", "desc": "您的好友"},
        button_list=[{"text": "按钮1", "style": 1, "key": "button_key_1"}],
    )
    sent = build(request(message("template_card", given_card)))
    assert sent["msgtype"] == "template_card"
    assert sent["template_card"]["card_type"] == "button_interaction"
    assert sent["template_card"]["task_id"] == "t1"
    assert sent["template_card"]["source"] == given_card["source"]
    assert sent["template_card"]["main_title"] == given_card["main_title"]
    assert sent["template_card"]["button_list"] == [
        {"text": "按钮1", "style": 1, "type": 0, "key": "button_key_1"}
    ]


def test_update_template_card_body_matches_the_protocol_example() -> None:
    """§11.4: userids, partyids and tagids as arrays of ints, atall, response_code, button."""
    body = build(
        request(
            message(
                "update_template_card",
                {"response_code": "RC", "button": {"replace_name": "已处理"}},
            ),
            to={"users": ["u1"], "parties": [2], "tags": ["44"]},
        )
    )
    assert body == {
        "userids": ["u1"],
        "partyids": [2],
        "tagids": [44],
        "atall": 0,
        "agentid": 1000002,
        "response_code": "RC",
        "enable_id_trans": 0,
        "button": {"replace_name": "已处理"},
    }


def test_update_with_a_new_card_carries_replace_text() -> None:
    """The full-card form puts replace_text inside template_card."""
    body = build(
        request(
            message(
                "update_template_card",
                {
                    "response_code": "RC",
                    "replace_text": "已提交",
                    "template_card": card("vote_interaction"),
                },
            ),
            to={"all": True},
        )
    )
    assert body["atall"] == 1
    assert "userids" not in body
    assert body["template_card"]["card_type"] == "vote_interaction"
    assert body["template_card"]["replace_text"] == "已提交"


def test_recall_body_is_just_the_msgid() -> None:
    """§11.5: {"msgid": …}."""
    assert build(request(message("recall", {"msgid": "M1"}), to={})) == {"msgid": "M1"}


# --- Results ------------------------------------------------------------------------------------


def test_result_has_exactly_the_design_fields() -> None:
    """design.md: the notify.result payload (plus who WeCom found unlicensed and whom the
    duplicate check held back)."""
    result = result_from_wecom_answer("r1", {"errcode": 0, "errmsg": "ok", "msgid": "M"}, 1)
    assert set(result.model_dump()) == {
        "request_id",
        "status",
        "msgid",
        "response_code",
        "duplicate_check",
        "unlicensed_users",
        "duplicate_users",
        "invalid_users",
        "invalid_parties",
        "invalid_tags",
        "errcode",
        "errmsg",
        "attempts",
    }


def test_an_answer_without_invalid_parts_is_sent() -> None:
    """errcode 0 and nobody listed: everyone got it."""
    answer = {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "M1"}
    assert result_from_wecom_answer("r1", answer, 1) == NotifyResult(
        request_id="r1", status="sent", msgid="M1", errcode=0, errmsg="ok", attempts=1
    )


@pytest.mark.parametrize(
    ("field", "attribute"),
    [
        ("invaliduser", "invalid_users"),
        ("invalidparty", "invalid_parties"),
        ("invalidtag", "invalid_tags"),
    ],
)
def test_each_invalid_list_makes_it_partial(field: str, attribute: str) -> None:
    """errcode 0 with some recipients invalid is a partial success."""
    result = result_from_wecom_answer("r1", {"errcode": 0, "errmsg": "ok", field: "a|b"}, 2)
    assert result.status == "partial"
    assert getattr(result, attribute) == ["a", "b"]
    assert result.attempts == 2


def test_results_carry_what_wecom_answered() -> None:
    """§11.1: msgid, response_code and unlicenseduser reach the result; an unlicensed member
    did not get the message, so it is partial."""
    answer = {
        "errcode": 0,
        "errmsg": "ok",
        "unlicenseduser": "userid3|userid4",
        "msgid": "xxxx",
        "response_code": "xyzxyz",
    }
    result = result_from_wecom_answer("r1", answer, 1, duplicate_check=True)
    assert result.msgid == "xxxx"
    assert result.response_code == "xyzxyz"
    assert result.unlicensed_users == ["userid3", "userid4"]
    assert result.duplicate_check is True
    assert result.status == "partial"


def test_a_message_the_duplicate_check_held_back_is_never_sent() -> None:
    """Held back for some members: partial naming them; for every member: failed."""
    answer = {"errcode": 0, "errmsg": "ok", "msgid": "M"}
    some = result_from_wecom_answer(
        "r1", answer, 1, duplicate_check=True, duplicate_users=["a"], only_users=["A", "b"]
    )
    assert (some.status, some.duplicate_users) == ("partial", ["a"])
    everyone = result_from_wecom_answer(
        "r1", answer, 1, duplicate_check=True, duplicate_users=["a"], only_users=["A"]
    )
    assert everyone.status == "failed"
    assert everyone.errcode == 0
    assert everyone.errmsg is not None
    assert "duplicate check" in everyone.errmsg
    # With a party the notifier cannot know that nobody else got it.
    party = result_from_wecom_answer(
        "r1", answer, 1, duplicate_check=True, duplicate_users=["a"], only_users=None
    )
    assert party.status == "partial"


def test_the_protocol_example_answer_maps_every_list() -> None:
    """§11.1's response example."""
    answer = {
        "errcode": 0,
        "errmsg": "ok",
        "invaliduser": "userid1|userid2",
        "invalidparty": "1|2",
        "invalidtag": "3|4",
        "unlicenseduser": "userid3|userid4",
        "msgid": "xxxx",
        "response_code": "xyzxyz",
    }
    result = result_from_wecom_answer("r1", answer, 1)
    assert result.status == "partial"
    assert (result.invalid_users, result.invalid_parties, result.invalid_tags) == (
        ["userid1", "userid2"],
        ["1", "2"],
        ["3", "4"],
    )
    assert result.msgid == "xxxx"


def test_a_non_zero_errcode_is_failed() -> None:
    """81013 (all recipients invalid) and any other errcode fail, keeping the lists."""
    answer = {"errcode": 81013, "errmsg": "user & party & tag all invalid", "invaliduser": "x"}
    result = result_from_wecom_answer("r1", answer, 1)
    assert (result.status, result.errcode, result.msgid) == ("failed", 81013, None)
    assert result.invalid_users == ["x"]


def test_update_template_card_answers_list_users_as_an_array() -> None:
    """§11.4: invaliduser is an array there."""
    result = result_from_wecom_answer("r1", {"errcode": 0, "invaliduser": ["u1"]}, 1)
    assert (result.status, result.invalid_users) == ("partial", ["u1"])


def test_an_answer_without_errcode_is_failed() -> None:
    """A malformed answer is not a success."""
    result = result_from_wecom_answer("r1", {"msgid": "M"}, 1)
    assert (result.status, result.errcode) == ("failed", None)
    assert result.errmsg == "the answer carries no errcode"


def test_expired_result() -> None:
    """A request past its deadline is reported, not silently dropped."""
    result = expired_result("r1", 0)
    assert (result.status, result.errcode, result.attempts) == ("expired", None, 0)


def test_results_tolerate_fields_added_later() -> None:
    """Consumers read results published by newer notifiers."""
    result = NotifyResult.model_validate(
        {"request_id": "r", "status": "sent", "attempts": 1, "response_code": "x"}
    )
    assert result.status == "sent"


def test_the_request_model_is_frozen() -> None:
    """Requests are values: nobody edits one in flight."""
    parsed: NotifyRequest = parse_notify_request(request(MINIMAL_MESSAGES["text"]))
    with pytest.raises(ValueError, match="frozen"):
        parsed.id = "other"  # type: ignore[misc]
