"""The simulator's reading of WeCom's duplicate check (docs/notifier.md, "The duplicate
check"): per member, the later send's interval, and only sends made with the check on."""

from __future__ import annotations

from typing import Any

from simulator.installs import Corp, Member
from simulator.messages import Outbox
from tests.support.simulator import SimClock


def _corp() -> Corp:
    corp = Corp("wwcorp", 1_000_002)
    corp.members["alice"] = Member("alice", "woalice", installed=True)
    corp.members["bob"] = Member("bob", "wobob", installed=True)
    return corp


def _text(touser: str = "alice", **fields: Any) -> dict[str, Any]:
    return {
        "touser": touser,
        "msgtype": "text",
        "agentid": 1,
        "text": {"content": "1234"},
        **fields,
    }


def test_a_send_without_the_check_is_not_remembered_for_it() -> None:
    """An unchecked send of the same content does not make a later checked send a duplicate."""
    outbox = Outbox(SimClock())
    corp = _corp()
    assert outbox.deliver(corp, _text(), ["alice"]) == {"alice": "delivered"}
    checked = _text(enable_duplicate_check=1, duplicate_check_interval=600)
    assert outbox.deliver(corp, checked, ["alice"]) == {"alice": "delivered"}
    assert outbox.deliver(corp, checked, ["alice"]) == {"alice": "duplicate"}


def test_the_check_is_per_member_whatever_the_other_recipients() -> None:
    """Only the member who already got the content is held back."""
    outbox = Outbox(SimClock())
    corp = _corp()
    first = _text(enable_duplicate_check=1, duplicate_check_interval=600)
    assert outbox.deliver(corp, first, ["alice"]) == {"alice": "delivered"}
    both = dict(first, touser="alice|bob")
    outcomes = outbox.deliver(corp, both, ["alice", "bob"])
    assert outcomes == {"alice": "duplicate", "bob": "delivered"}
