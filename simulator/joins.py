"""How WeCom tells the app a member installed: ``create_auth`` or, for a later member of a
corp that already has the app, the data-callback ``subscribe`` event (protocol doc §15 q4);
and, the other way round, that a member left while others keep the app: ``change_auth``, or
the ``unsubscribe`` event.

§5.2 documents ``create_auth`` for an authorisation; §6.2 (path/94496) says that in member
authorisation mode a further member of an installed corp is reported as ``subscribe`` (the
visible range grew). Which of the two WeCom sends for every later member is open, so
``SIM_LATER_MEMBERS`` chooses: ``create_auth`` (every install) or ``subscribe``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.callback_xml import data_xml
from simulator.installs import Corp
from simulator.pusher import CallbackPusher
from simulator.state import SimulatorState

LaterMembers = Literal["create_auth", "subscribe"]
Pushed = Literal["create_auth", "subscribe"]
LeavePushed = Literal["cancel_auth", "change_auth", "unsubscribe"]


@dataclass(frozen=True, slots=True)
class Joined:
    """What an install pushed: the auth code (``None`` for ``subscribe``) and the delivery."""

    auth_code: str | None
    pushed: Pushed
    delivered: bool


async def install_and_announce(
    state: SimulatorState,
    pusher: CallbackPusher,
    later_members: LaterMembers,
    corp_id: str,
    user_id: str,
    *,
    test: bool,
    install_state: str | None,
) -> Joined:
    """Install the member (ask ``refusal`` first) and push what WeCom would, awaited."""
    installs = state.installs
    if later_members == "subscribe" and installs.has_app(corp_id):
        # The member joins the visible range; the corp's grant and state stay as they are.
        corp = installs.add_member(corp_id, user_id, test=test)
        delivered = await _push_member_event(state, pusher, corp, user_id, "subscribe")
        return Joined(None, "subscribe", delivered)
    code = installs.install(corp_id, user_id, test=test, state=install_state)
    delivered = await pusher.push_instruction(
        "create_auth", ("AuthCode", code), ("State", install_state)
    )
    return Joined(code, "create_auth", delivered)


async def announce_leave(
    state: SimulatorState,
    pusher: CallbackPusher,
    later_members: LaterMembers,
    corp_id: str,
    user_id: str | None,
    *,
    cancelled: bool,
) -> tuple[LeavePushed, bool]:
    """Push what WeCom would after members removed the app: ``cancel_auth`` when nobody is
    left; when others keep it, ``change_auth`` (§5.3), or under ``subscribe`` the data event
    ``unsubscribe`` of the member who left (the visible range shrank)."""
    if cancelled:
        return "cancel_auth", await pusher.push_instruction("cancel_auth", ("AuthCorpId", corp_id))
    if later_members == "subscribe" and user_id is not None:
        corp = state.installs.installed_corp(corp_id)
        delivered = await _push_member_event(state, pusher, corp, user_id, "unsubscribe")
        return "unsubscribe", delivered
    return "change_auth", await pusher.push_instruction("change_auth", ("AuthCorpId", corp_id))


async def _push_member_event(
    state: SimulatorState,
    pusher: CallbackPusher,
    corp: Corp,
    user_id: str,
    event: Literal["subscribe", "unsubscribe"],
) -> bool:
    """Deliver the data-callback ``event`` of ``user_id`` in ``corp`` (``Event`` and
    ``AgentID`` only, as WeCom sends it)."""
    plaintext = data_xml(
        corp.corp_id,
        user_id,
        int(state.clock()),
        "event",
        ("Event", event),
        ("AgentID", corp.agent_id),
    )
    return await pusher.deliver(
        f"event.{event}",
        "data",
        plaintext,
        to_user_name=corp.corp_id,
        agent_id=str(corp.agent_id),
    )
