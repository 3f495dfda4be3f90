"""Tests of callback normalisation: event types, typed payloads, corp ids and times."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import PAYLOAD_MODELS, EventEnvelope
from shared.wecom import events
from shared.wecom.errors import XmlError
from shared.wecom.events import NormalizedEvent, Route, normalize_callback
from shared.wecom.xml import parse_xml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "callbacks"
MANIFEST: list[dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text("utf-8"))
RECEIVED_AT = datetime(2024, 6, 11, 8, 0, 0, tzinfo=UTC)
SEGMENT = re.compile(r"[a-z0-9_]+")


def _normalize_fixture(entry: dict[str, Any]) -> NormalizedEvent:
    raw = parse_xml((FIXTURES / entry["file"]).read_bytes())
    return normalize_callback(entry["route"], raw, received_at=RECEIVED_AT)


def _normalize(route: Route, raw: dict[str, Any]) -> NormalizedEvent:
    return normalize_callback(route, raw, received_at=RECEIVED_AT)


@pytest.mark.parametrize("entry", MANIFEST, ids=[entry["file"] for entry in MANIFEST])
def test_every_fixture_normalizes_as_its_manifest_says(entry: dict[str, Any]) -> None:
    """The gateway's HTTP tests rely on these same expectations after encryption."""
    event = _normalize_fixture(entry)
    assert event.type == entry["type"]
    assert event.corp_id == entry["corp_id"]
    assert {key: event.payload.get(key) for key in entry["payload"]} == entry["payload"]
    assert event.occurred_at != RECEIVED_AT  # every fixture carries CreateTime or TimeStamp


@pytest.mark.parametrize("entry", MANIFEST, ids=[entry["file"] for entry in MANIFEST])
def test_every_fixture_fits_the_envelope(entry: dict[str, Any]) -> None:
    """A normalised event is everything the gateway needs to build a valid envelope."""
    event = _normalize_fixture(entry)
    envelope = EventEnvelope(
        id="0" * 64,
        type=event.type,
        suite_id=event.suite_id or "ww4asffe99e54c0f4c",
        corp_id=event.corp_id,
        occurred_at=event.occurred_at,
        received_at=RECEIVED_AT,
        payload=event.payload,
        raw=event.raw,
    )
    assert EventEnvelope.model_validate_json(envelope.model_dump_json()) == envelope
    assert all(SEGMENT.fullmatch(segment) for segment in event.type.split("."))


@pytest.mark.parametrize(
    "entry",
    [entry for entry in MANIFEST if entry["type"] in PAYLOAD_MODELS],
    ids=[entry["file"] for entry in MANIFEST if entry["type"] in PAYLOAD_MODELS],
)
def test_a_payload_read_off_the_bus_validates_to_itself(entry: dict[str, Any]) -> None:
    """Consumers re-validate the snake_case payload with the same model."""
    event = _normalize_fixture(entry)
    model = PAYLOAD_MODELS[event.type]
    assert model.model_validate(event.payload).model_dump(mode="json") == event.payload


def test_the_fixtures_cover_every_known_event_type() -> None:
    """Each payload model is exercised end to end by at least one realistic body."""
    assert set(PAYLOAD_MODELS) <= {entry["type"] for entry in MANIFEST}


def test_unknown_fixtures_carry_the_raw_fields_as_payload() -> None:
    """An InfoType or Event the code does not know is published under its own name."""
    unknown = [entry for entry in MANIFEST if entry["type"] not in PAYLOAD_MODELS]
    assert {entry["route"] for entry in unknown} == {"command", "data"}
    for entry in unknown:
        event = _normalize_fixture(entry)
        assert event.payload == event.raw == entry["payload"]


@pytest.mark.parametrize(
    ("route", "raw", "expected_type"),
    [
        ("command", {"InfoType": "open_order", "OrderId": "T1"}, "command.open_order"),
        ("data", {"MsgType": "file", "MsgId": "1"}, "data.message.file"),
        ("data", {"MsgType": "event", "Event": "kf_msg_or_event"}, "data.event.kf_msg_or_event"),
    ],
)
def test_unknown_types_are_events_with_the_raw_payload(
    route: Route, raw: dict[str, Any], expected_type: str
) -> None:
    """Forward compatibility: never fail on a name added to WeCom later."""
    event = _normalize(route, raw)
    assert event.type == expected_type
    assert event.payload == raw
    assert event.payload is not raw


@pytest.mark.parametrize(
    ("route", "raw", "reason"),
    [
        ("command", {"SuiteId": "ww1", "TimeStamp": "1"}, "no InfoType"),
        ("command", {"InfoType": "", "SuiteId": "ww1"}, "no InfoType"),
        ("command", {"InfoType": "   "}, "no InfoType"),
        ("command", {"MsgType": "event"}, "no InfoType"),
        ("command", {"MsgType": "text", "Event": "x"}, "no InfoType"),
        ("data", {"ToUserName": "ww1", "Content": "hi"}, "no MsgType"),
        ("data", {"MsgType": "event", "ToUserName": "ww1"}, "no Event"),
        ("data", {"MsgType": "event", "Event": ""}, "no Event"),
    ],
)
def test_a_body_without_its_type_is_refused(route: Route, raw: dict[str, Any], reason: str) -> None:
    """Without InfoType, MsgType or Event there is no routing key to publish under."""
    with pytest.raises(XmlError, match=reason):
        _normalize(route, raw)


@pytest.mark.parametrize(
    ("route", "raw", "field"),
    [
        ("command", {"InfoType": "suite_ticket", "SuiteId": "ww1"}, "SuiteTicket is required"),
        ("command", {"InfoType": "suite_ticket", "SuiteTicket": ""}, "SuiteTicket is empty"),
        ("command", {"InfoType": "create_auth", "State": "s"}, "AuthCode is required"),
        ("command", {"InfoType": "change_auth"}, "AuthCorpId is required"),
        ("command", {"InfoType": "cancel_auth", "AuthCorpId": ""}, "AuthCorpId is empty"),
        ("command", {"InfoType": "reset_permanent_code"}, "AuthCode is required"),
        ("command", {"InfoType": "change_contact", "AuthCorpId": "ww1"}, "ChangeType is required"),
        ("data", {"MsgType": "text", "Content": "hi"}, "MsgId is required"),
        ("data", {"MsgType": "image", "MediaId": "m"}, "MsgId is required"),
        ("data", {"MsgType": "event", "Event": "change_contact"}, "ChangeType is required"),
    ],
)
def test_a_known_type_without_its_required_field_is_refused(
    route: Route, raw: dict[str, Any], field: str
) -> None:
    """The error names the XML field, so an operator can see what WeCom left out."""
    with pytest.raises(XmlError, match=field):
        _normalize(route, raw)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"MsgType": "text", "MsgId": "1", "AgentID": "s3cr3t"}, "AgentID is invalid"),
        ({"MsgType": "location", "MsgId": "1", "Location_X": "s3cr3t"}, "Location_X is invalid"),
        ({"MsgType": "text", "MsgId": "1", "Content": {"s3cr3t": "x"}}, "Content is invalid"),
        ({"MsgType": "text", "MsgId": ["1", "s3cr3t"]}, "MsgId is invalid"),
        (
            {"MsgType": "event", "Event": "pic_sysphoto", "SendPicsInfo": {"Count": "s3cr3t"}},
            r"SendPicsInfo\.Count is invalid",
        ),
        (
            {"MsgType": "event", "Event": "template_card_event", "SelectedItems": "s3cr3t"},
            r"SelectedItems\.0 is invalid",
        ),
    ],
)
def test_a_malformed_field_is_named_without_echoing_its_value(
    raw: dict[str, Any], field: str
) -> None:
    """Message content must not reach logs through an error message."""
    with pytest.raises(XmlError, match=field) as caught:
        _normalize("data", raw)
    assert "s3cr3t" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_occurred_at_comes_from_create_time_in_utc() -> None:
    """Data callbacks are stamped by WeCom in Unix seconds."""
    event = _normalize(
        "data", {"MsgType": "event", "Event": "subscribe", "CreateTime": "1718006000"}
    )
    assert event.occurred_at == datetime(2024, 6, 10, 7, 53, 20, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


def test_occurred_at_comes_from_timestamp_for_instructions() -> None:
    """Instruction callbacks carry TimeStamp instead of CreateTime."""
    raw = {"InfoType": "suite_ticket", "SuiteTicket": "t", "TimeStamp": "1403610513"}
    assert _normalize("command", raw).occurred_at == datetime(2014, 6, 24, 11, 48, 33, tzinfo=UTC)


@pytest.mark.parametrize(
    ("route", "raw"),
    [
        ("data", {"MsgType": "event", "Event": "subscribe"}),
        ("data", {"MsgType": "event", "Event": "subscribe", "CreateTime": ""}),
        # An instruction's time is TimeStamp; a stray CreateTime is not used.
        ("command", {"InfoType": "suite_ticket", "SuiteTicket": "t", "CreateTime": "1"}),
    ],
)
def test_occurred_at_falls_back_to_received_at(route: Route, raw: dict[str, Any]) -> None:
    """Without a timestamp the best estimate of when it happened is when it arrived."""
    assert _normalize(route, raw).occurred_at == RECEIVED_AT


def test_received_at_is_normalised_to_utc() -> None:
    """A naive receive time is taken as UTC; an aware one is converted."""
    raw = {"MsgType": "event", "Event": "subscribe"}
    naive = datetime(2024, 6, 11, 8, 0, 0)
    assert normalize_callback("data", raw, received_at=naive).occurred_at == RECEIVED_AT
    beijing = RECEIVED_AT.astimezone(timezone(timedelta(hours=8)))
    occurred_at = normalize_callback("data", raw, received_at=beijing).occurred_at
    assert occurred_at == RECEIVED_AT
    assert occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["-1", "1.5", "1_000", "１２", "12345678901234567890", "abc"])
def test_a_malformed_timestamp_is_refused(value: str) -> None:
    """A time that is not Unix seconds cannot be trusted for ordering or de-duplication."""
    raw = {"MsgType": "event", "Event": "subscribe", "CreateTime": value}
    with pytest.raises(XmlError, match="CreateTime"):
        _normalize("data", raw)


@pytest.mark.parametrize(
    ("raw", "expected_type"),
    [
        ({"InfoType": "Suite-Ticket.v2"}, "command.suite_ticket_v2"),
        ({"InfoType": "a*b#c d"}, "command.a_b_c_d"),
        ({"InfoType": "  change_auth_X  ", "AuthCorpId": "ww1"}, "command.change_auth_x"),
        ({"InfoType": "授权"}, "command.__"),
    ],
)
def test_type_names_are_sanitised_into_safe_routing_keys(
    raw: dict[str, Any], expected_type: str
) -> None:
    """Dots would add segments and '*'/'#' are AMQP wildcards: each becomes '_'."""
    assert _normalize("command", raw).type == expected_type


def test_event_names_are_lower_cased() -> None:
    """WeCom sends LOCATION in upper case; the type is data.event.location."""
    raw = {"MsgType": "Event", "Event": "LOCATION", "Latitude": "23.1", "Longitude": "113.3"}
    event = _normalize("data", raw)
    assert event.type == "data.event.location"
    assert event.payload["latitude"] == pytest.approx(23.1)


def test_an_overlong_type_name_is_refused() -> None:
    """A routing key is at most 255 bytes; no real InfoType comes close to the limit."""
    with pytest.raises(XmlError, match="InfoType is longer than 64"):
        _normalize("command", {"InfoType": "x" * 65})
    assert _normalize("command", {"InfoType": "x" * 64}).type == "command." + "x" * 64


@pytest.mark.parametrize("field", ["InfoType", "SuiteId", "AuthCorpId"])
def test_a_routing_field_that_is_not_text_is_refused(field: str) -> None:
    """A repeated or nested InfoType/SuiteId/corp id is ambiguous."""
    raw: dict[str, Any] = {"InfoType": "open_order", field: ["a", "b"]}
    with pytest.raises(XmlError, match=f"{field} must be a text element"):
        _normalize("command", raw)


@pytest.mark.parametrize(
    ("raw", "corp_id"),
    [
        (
            {"InfoType": "open_order", "AuthCorpId": "wwA", "PaidCorpId": "wwP", "CorpId": "wwC"},
            "wwA",
        ),
        ({"InfoType": "open_order", "PaidCorpId": "wwP", "CorpId": "wwC"}, "wwP"),
        ({"InfoType": "open_order", "AuthCorpId": "", "CorpId": "wwC"}, "wwC"),
        ({"InfoType": "open_order", "ToUserName": "wwT"}, None),
        ({"InfoType": "suite_ticket", "SuiteTicket": "t"}, None),
    ],
)
def test_an_instruction_names_its_corp_by_the_first_corp_field_present(
    raw: dict[str, Any], corp_id: str | None
) -> None:
    """AuthCorpId, then PaidCorpId, then CorpId; an instruction's ToUserName is the suite."""
    assert _normalize("command", raw).corp_id == corp_id


def test_a_data_callback_names_its_corp_by_to_user_name() -> None:
    """The decrypted ToUserName is the authorised corp."""
    raw = {"ToUserName": "wwCorp", "MsgType": "event", "Event": "enter_agent", "AgentID": "1"}
    assert _normalize("data", raw).corp_id == "wwCorp"
    assert _normalize("data", {**raw, "ToUserName": ""}).corp_id is None


def test_suite_id_comes_from_the_suite_id_field() -> None:
    """Instruction bodies carry SuiteId; data bodies do not."""
    raw = {"InfoType": "suite_ticket", "SuiteTicket": "t", "SuiteId": "wwSuite"}
    assert _normalize("command", raw).suite_id == "wwSuite"
    assert _normalize("data", {"MsgType": "event", "Event": "subscribe"}).suite_id is None


def test_change_app_admin_on_the_instruction_url_is_a_command() -> None:
    """It comes shaped as an event (no InfoType); the corp is its ToUserName."""
    raw = {
        "ToUserName": "wwCorp",
        "FromUserName": "sys",
        "CreateTime": "1718004580",
        "MsgType": "event",
        "Event": "change_app_admin",
        "AgentID": "1000002",
    }
    event = _normalize("command", raw)
    assert event.type == "command.change_app_admin"
    assert event.corp_id == "wwCorp"
    assert event.payload == {"user_id": "sys", "agent_id": 1000002}
    assert event.occurred_at == datetime.fromtimestamp(1718004580, UTC)


def test_the_payload_is_the_snake_case_dump_and_raw_is_kept() -> None:
    """Typed fields are converted (AgentID to int, MsgId kept a 64-bit string)."""
    raw = {
        "ToUserName": "wwCorp",
        "FromUserName": "zhangsan",
        "CreateTime": "1348831860",
        "MsgType": "text",
        "Content": "this is a test",
        "MsgId": "18446744073709551615",
        "AgentID": "1",
    }
    event = _normalize("data", raw)
    assert event.payload == {
        "user_id": "zhangsan",
        "agent_id": 1,
        "msg_id": "18446744073709551615",
        "content": "this is a test",
    }
    assert event.raw is raw


def test_selected_items_accept_both_spellings_single_or_repeated() -> None:
    """WeCom's sample says OpitonIds/OpitonId, SDKs say OptionIds/OptionId."""
    raw = {
        "MsgType": "event",
        "Event": "template_card_event",
        "SelectedItems": {
            "SelectedItem": [
                {"QuestionKey": "q1", "OpitonIds": {"OpitonId": "a"}},
                {"QuestionKey": "q2", "OptionIds": {"OptionId": ["b", "c"]}},
                {"QuestionKey": "q3", "OptionIds": ""},
                {"QuestionKey": "q4"},
            ]
        },
    }
    assert _normalize("data", raw).payload["selected_items"] == [
        {"question_key": "q1", "option_ids": ["a"]},
        {"question_key": "q2", "option_ids": ["b", "c"]},
        {"question_key": "q3", "option_ids": []},
        {"question_key": "q4", "option_ids": []},
    ]
    single = {**raw, "SelectedItems": {"SelectedItem": {"QuestionKey": "q", "OptionIds": "x"}}}
    assert _normalize("data", single).payload["selected_items"] == [
        {"question_key": "q", "option_ids": ["x"]}
    ]
    assert _normalize("data", {**raw, "SelectedItems": ""}).payload["selected_items"] == []


def test_comma_lists_become_lists_of_strings() -> None:
    """Department and the tag item fields are comma-separated in the XML."""
    raw = {
        "InfoType": "change_contact",
        "ChangeType": "update_tag",
        "TagId": "7",
        "AddUserItems": "zhangsan, lisi,,",
        "DelPartyItems": "",
    }
    payload = _normalize("command", raw).payload
    assert payload["add_user_items"] == ["zhangsan", "lisi"]
    assert payload["del_party_items"] == []
    assert payload["department"] == []


def test_an_empty_agent_id_is_absent() -> None:
    """Instruction-style bodies leave AgentID empty."""
    raw = {"MsgType": "event", "Event": "subscribe", "AgentID": ""}
    assert _normalize("data", raw).payload["agent_id"] is None


def test_an_unknown_route_is_a_programming_error() -> None:
    """Only the two callback URLs exist; anything else is a bug in the caller."""
    with pytest.raises(ValueError, match="unknown callback route"):
        normalize_callback("verify", {}, received_at=RECEIVED_AT)  # type: ignore[arg-type]


def test_type_names_from_outside_cannot_grow_the_name_cache_without_bound() -> None:
    """Names are cached once worked out; unknown names keep coming from WeCom (or a forger
    with the key), so the cache stops growing and later names are still right."""
    received = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(events._TYPE_NAMES_LIMIT + 50):
        raw = {"MsgType": "event", "Event": f"New.Kind*{index}", "ToUserName": "ww1"}
        event = normalize_callback("data", raw, received_at=received)
        assert event.type == f"data.event.new_kind_{index}"
    assert len(events._TYPE_NAMES) <= events._TYPE_NAMES_LIMIT
    late = {"MsgType": "event", "Event": "Later.One", "ToUserName": "w"}
    assert normalize_callback("data", late, received_at=received).type == "data.event.later_one"
