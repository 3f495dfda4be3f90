"""Validation of ``message/send`` bodies per ``msgtype``, as WeCom refuses them (pure).

Protocol doc §11.2/§11.3 give the fields and limits and §12 a few codes (44004 empty text,
45002 too large). For the other refusals the doc names no code; we use the ones of WeCom's
global error table that name the fault (40007 bad media_id, 41006 missing media_id, 41010
missing url, 41016 missing title, 44003 empty news, 45003/45004/45005 title/description/link
too long, 45008 more than 8 articles), and 40058 "invalid parameter" for anything else. These
choices are listed in docs/simulator.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from simulator.state_types import WeComError

MediaCheck = Callable[[str], bool]
"""Whether a media_id was uploaded by this corp and is still valid."""

TEXT_MAX_BYTES = 2048
MPNEWS_CONTENT_MAX_BYTES = 666 * 1024
TITLE_MAX_BYTES = 128
DESCRIPTION_MAX_BYTES = 512
URL_MAX_BYTES = 2048
MAX_ARTICLES = 8
CARD_TYPES = frozenset(
    {"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"}
)
# §11.1: these card types (and notices with an action_menu) answer a response_code.
INTERACTIVE_CARDS = frozenset({"button_interaction", "vote_interaction", "multiple_interaction"})
TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")


def _size(value: str) -> int:
    return len(value.encode())


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise WeComError(40058, f"invalid parameter, {key} is required")
    return value


def _text_field(item: dict[str, Any], key: str, limit: int, code: int) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WeComError(40058, f"invalid parameter {key}")
    if _size(value) > limit:
        raise WeComError(code, f"{key} exceeds {limit} bytes")
    return value


def _content(item: dict[str, Any], limit: int = TEXT_MAX_BYTES) -> None:
    content = item.get("content")
    if not isinstance(content, str) or not content:
        raise WeComError(44004, "empty content")
    if _size(content) > limit:
        raise WeComError(45002, "content size out of limit")


def _media(item: dict[str, Any], media_known: MediaCheck, key: str = "media_id") -> None:
    media_id = item.get(key)
    if not isinstance(media_id, str) or not media_id:
        raise WeComError(41006, f"missing {key}")
    if not media_known(media_id):
        raise WeComError(40007, "invalid media_id")


def _title(item: dict[str, Any], *, required: bool) -> None:
    title = _text_field(item, "title", TITLE_MAX_BYTES, 45003)
    if required and not title:
        raise WeComError(41016, "missing title")


def _articles(body: dict[str, Any]) -> list[dict[str, Any]]:
    articles = body.get("articles")
    if not isinstance(articles, list) or not articles:
        raise WeComError(44003, "empty news")
    if len(articles) > MAX_ARTICLES:
        raise WeComError(45008, f"article count exceeds {MAX_ARTICLES}")
    if not all(isinstance(article, dict) for article in articles):
        raise WeComError(40058, "invalid parameter articles")
    return articles


def _check_text(body: dict[str, Any], _: MediaCheck) -> None:
    _content(body)


def _check_media(body: dict[str, Any], media_known: MediaCheck) -> None:
    _media(body, media_known)


def _check_video(body: dict[str, Any], media_known: MediaCheck) -> None:
    _media(body, media_known)
    _title(body, required=False)
    _text_field(body, "description", DESCRIPTION_MAX_BYTES, 45004)


def _check_textcard(body: dict[str, Any], _: MediaCheck) -> None:
    _title(body, required=True)
    if not _text_field(body, "description", DESCRIPTION_MAX_BYTES, 45004):
        raise WeComError(40058, "invalid parameter, description is required")
    if not _text_field(body, "url", URL_MAX_BYTES, 45005):
        raise WeComError(41010, "missing url")
    btntxt = body.get("btntxt")
    if btntxt is not None and (not isinstance(btntxt, str) or len(btntxt) > 4):
        raise WeComError(40058, "invalid parameter btntxt, at most 4 characters")


def _check_news(body: dict[str, Any], _: MediaCheck) -> None:
    for article in _articles(body):
        _title(article, required=True)
        _text_field(article, "description", DESCRIPTION_MAX_BYTES, 45004)
        url = _text_field(article, "url", URL_MAX_BYTES, 45005)
        _text_field(article, "picurl", URL_MAX_BYTES, 45005)
        # appid + pagepath (a mini-program page) stand in for the url (§11.2).
        if not url and not (article.get("appid") and article.get("pagepath")):
            raise WeComError(41010, "missing url")


def _check_mpnews(body: dict[str, Any], media_known: MediaCheck) -> None:
    for article in _articles(body):
        _title(article, required=True)
        _media(article, media_known, "thumb_media_id")
        _content(article, MPNEWS_CONTENT_MAX_BYTES)


def _check_miniprogram_notice(body: dict[str, Any], _: MediaCheck) -> None:
    if not body.get("appid"):
        raise WeComError(40058, "invalid parameter, appid is required")
    _title(body, required=True)
    items = body.get("content_item", [])
    if not isinstance(items, list) or len(items) > 10:
        raise WeComError(40058, "invalid parameter content_item, at most 10 items")


def _check_taskcard(body: dict[str, Any], _: MediaCheck) -> None:
    _title(body, required=True)
    task_id = body.get("task_id")
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        raise WeComError(40058, "invalid parameter task_id")


def _check_template_msg(body: dict[str, Any], _: MediaCheck) -> None:
    if not body.get("template_id"):
        raise WeComError(40058, "invalid parameter, template_id is required")
    tickets = body.get("selected_ticket_list", [])
    if not isinstance(tickets, list) or len(tickets) > 10:
        raise WeComError(40058, "invalid parameter selected_ticket_list, at most 10 tickets")


_Checker = Callable[[dict[str, Any], MediaCheck], None]
_CHECKERS: dict[str, _Checker] = {
    "text": _check_text,
    "markdown": _check_text,
    "image": _check_media,
    "voice": _check_media,
    "file": _check_media,
    "video": _check_video,
    "textcard": _check_textcard,
    "news": _check_news,
    "mpnews": _check_mpnews,
    "miniprogram_notice": _check_miniprogram_notice,
    "interactive_taskcard": _check_taskcard,
    "template_msg": _check_template_msg,
}
MSG_TYPES = frozenset({*_CHECKERS, "template_card"})


def check_msgtype(body: dict[str, Any]) -> str:
    """The body's msgtype, or 40008 (invalid message type) for a missing or unknown one."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in MSG_TYPES:
        raise WeComError(40008, "invalid message type")
    return msgtype


def check_content(body: dict[str, Any], msgtype: str, media_known: MediaCheck) -> bool:
    """Refuse the body for ``msgtype`` as WeCom would; whether it earns a response_code."""
    content = _object(body, msgtype)
    if msgtype == "template_card":
        return check_template_card(content)
    _CHECKERS[msgtype](content, media_known)
    return False


def check_template_card(card: dict[str, Any]) -> bool:
    """§11.3's structural rules; whether the card answers a response_code."""
    card_type = card.get("card_type")
    if card_type not in CARD_TYPES:
        raise WeComError(40058, "invalid parameter card_type")
    has_menu = card.get("action_menu") is not None
    interactive = card_type in INTERACTIVE_CARDS
    if has_menu or interactive:
        task_id = card.get("task_id")
        if not isinstance(task_id, str) or not TASK_ID.match(task_id):
            raise WeComError(40058, "invalid parameter task_id")
    if card_type in ("text_notice", "news_notice"):
        action = card.get("card_action")
        if not isinstance(action, dict) or action.get("type") not in (1, 2):
            raise WeComError(40058, "invalid parameter, card_action of type 1 or 2 is required")
    if card_type == "news_notice" and not (card.get("card_image") or card.get("image_text_area")):
        raise WeComError(40058, "invalid parameter, card_image or image_text_area is required")
    _check_card_controls(card, str(card_type))
    return has_menu or interactive


def _check_card_controls(card: dict[str, Any], card_type: str) -> None:
    if card_type == "button_interaction":
        _bounded_list(card, "button_list", 1, 6)
    elif card_type == "vote_interaction":
        checkbox = _object(card, "checkbox")
        _bounded_list(checkbox, "option_list", 1, 20)
        _object(card, "submit_button")
    elif card_type == "multiple_interaction":
        _bounded_list(card, "select_list", 1, 3)
        _object(card, "submit_button")


def _bounded_list(item: dict[str, Any], key: str, low: int, high: int) -> None:
    value = item.get(key)
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise WeComError(40058, f"invalid parameter {key}, {low} to {high} items")
