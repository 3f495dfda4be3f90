"""``/_sim/message`` and ``/_sim/event``: a member talks to the app, WeCom pushes a data callback.

Protocol doc §6: the outer ``ToUserName`` is the corp id and ``AgentID`` the app's agent id in
that corp; the decrypted body names the corp, the member, the time and the agent.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import NotFound
from simulator.callback_xml import Field as XmlField
from simulator.callback_xml import data_xml
from simulator.control import read_model
from simulator.control_installs import ID_PATTERN
from simulator.installs import Corp
from simulator.pusher import CallbackPusher
from simulator.state import SimulatorState


class MessageSpec(BaseModel):
    """Body of ``POST /_sim/message`` (text only in this slice)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corp_id: str = Field(pattern=ID_PATTERN)
    user_id: str = Field(pattern=ID_PATTERN)
    msgtype: Literal["text"] = "text"
    content: str = Field(min_length=1, max_length=2048)


class EventSpec(BaseModel):
    """Body of ``POST /_sim/event``; ``fields`` adds the event's own elements (§6.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corp_id: str = Field(pattern=ID_PATTERN)
    user_id: str = Field(pattern=ID_PATTERN)
    event: str = Field(pattern=r"^[A-Za-z_]{1,64}$")
    event_key: str | None = None
    fields: dict[str, str | int] = Field(default_factory=dict)


class DataControl:
    """Handlers that push data callbacks to ``SIM_DATA_URL``."""

    def __init__(self, state: SimulatorState, pusher: CallbackPusher) -> None:
        self._state = state
        self._pusher = pusher

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_sim/message", self.message),
            web.post("/_sim/event", self.event),
        ]

    def _member_corp(self, corp_id: str, user_id: str) -> Corp:
        # WeCom pushes only for members who can see the app, i.e. who installed it.
        corp = self._state.installs.corps.get(corp_id)
        member = None if corp is None else corp.members.get(user_id)
        if corp is None or member is None or not member.installed:
            raise NotFound(f"member {user_id!r} of {corp_id!r} has not installed the app")
        return corp

    async def _push(self, kind: str, corp: Corp, plaintext: bytes) -> bool:
        return await self._pusher.deliver(
            kind, "data", plaintext, to_user_name=corp.corp_id, agent_id=str(corp.agent_id)
        )

    async def message(self, request: web.Request) -> web.Response:
        """A member sends the app a message (§6.1)."""
        spec = await read_model(request, MessageSpec, "message")
        corp = self._member_corp(spec.corp_id, spec.user_id)
        msg_id = self._state.new_msg_id()
        plaintext = data_xml(
            corp.corp_id,
            spec.user_id,
            int(self._state.clock()),
            spec.msgtype,
            ("Content", spec.content),
            ("MsgId", msg_id),
            ("AgentID", corp.agent_id),
        )
        delivered = await self._push(f"message.{spec.msgtype}", corp, plaintext)
        return web.json_response({"msg_id": str(msg_id), "delivered": delivered})

    async def event(self, request: web.Request) -> web.Response:
        """A member triggers an event, e.g. enter_agent when opening the app (§6.2)."""
        spec = await read_model(request, EventSpec, "event")
        corp = self._member_corp(spec.corp_id, spec.user_id)
        # enter_agent carries an empty EventKey in WeCom's samples.
        key = spec.event_key if spec.event_key is not None else ""
        extra: list[XmlField] = list(spec.fields.items())
        plaintext = data_xml(
            corp.corp_id,
            spec.user_id,
            int(self._state.clock()),
            "event",
            ("Event", spec.event),
            ("EventKey", key),
            ("AgentID", corp.agent_id),
            *extra,
        )
        delivered = await self._push(f"event.{spec.event}", corp, plaintext)
        return web.json_response({"delivered": delivered})
