"""``/_sim/message`` and ``/_sim/event``: a member talks to the app, WeCom pushes a data callback.

Protocol doc §6: the outer ``ToUserName`` is the corp id and ``AgentID`` the app's agent id in
that corp; the decrypted body names the corp, the member, the time and the agent.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import InvalidRequest, NotFound
from simulator.callback_xml import Field as XmlField
from simulator.callback_xml import data_xml
from simulator.control import read_model
from simulator.control_installs import ID_PATTERN
from simulator.installs import Corp
from simulator.pusher import CallbackPusher
from simulator.state import SimulatorState

MsgType = Literal["text", "image", "voice", "video", "location", "link"]

# §6.1: the request fields each msgtype needs, in the order WeCom's XML carries them, with
# the XML element each becomes.
MESSAGE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "text": (("content", "Content"),),
    "image": (("pic_url", "PicUrl"), ("media_id", "MediaId")),
    "voice": (("media_id", "MediaId"), ("format", "Format")),
    "video": (("media_id", "MediaId"), ("thumb_media_id", "ThumbMediaId")),
    "location": (
        ("location_x", "Location_X"),
        ("location_y", "Location_Y"),
        ("scale", "Scale"),
        ("label", "Label"),
    ),
    "link": (
        ("title", "Title"),
        ("description", "Description"),
        ("url", "Url"),
        ("pic_url", "PicUrl"),
    ),
}


class MessageSpec(BaseModel):
    """Body of ``POST /_sim/message``: the member, the msgtype and that msgtype's fields (§6.1).

    Every field of the msgtype is required and no other is allowed (see ``MESSAGE_FIELDS``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    corp_id: str = Field(pattern=ID_PATTERN)
    user_id: str = Field(pattern=ID_PATTERN)
    msgtype: MsgType = "text"
    content: str | None = Field(None, min_length=1, max_length=2048)
    pic_url: str | None = Field(None, min_length=1, max_length=2048, pattern=r"^https?://")
    media_id: str | None = Field(None, min_length=1, max_length=256)
    format: str | None = Field(None, pattern=r"^[A-Za-z0-9]{1,16}$")
    thumb_media_id: str | None = Field(None, min_length=1, max_length=256)
    location_x: float | None = Field(None, ge=-90, le=90, description="latitude")
    location_y: float | None = Field(None, ge=-180, le=180, description="longitude")
    scale: int | None = Field(None, ge=0, le=30, description="map zoom level")
    label: str | None = Field(None, max_length=512)
    title: str | None = Field(None, min_length=1, max_length=512)
    description: str | None = Field(None, max_length=2048)
    url: str | None = Field(None, min_length=1, max_length=2048, pattern=r"^https?://")

    def xml_fields(self) -> list[XmlField]:
        """The msgtype's own elements; 400 naming missing or foreign fields."""
        wanted = MESSAGE_FIELDS[self.msgtype]
        names = {name for name, _ in wanted}
        given = self.model_fields_set - {"corp_id", "user_id", "msgtype"}
        missing = [name for name, _ in wanted if getattr(self, name) is None]
        if missing:
            raise InvalidRequest(
                f"invalid message: msgtype {self.msgtype} needs {', '.join(missing)}"
            )
        foreign = sorted(given - names)
        if foreign:
            raise InvalidRequest(
                f"invalid message: msgtype {self.msgtype} takes no {', '.join(foreign)}"
            )
        fields: list[XmlField] = [(element, getattr(self, name)) for name, element in wanted]
        if self.msgtype == "location":
            fields.append(("AppType", "wxwork"))  # §6.1: location messages name the client
        return fields


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
        fields = spec.xml_fields()
        corp = self._member_corp(spec.corp_id, spec.user_id)
        msg_id = self._state.new_msg_id()
        plaintext = data_xml(
            corp.corp_id,
            spec.user_id,
            int(self._state.clock()),
            spec.msgtype,
            *fields,
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
