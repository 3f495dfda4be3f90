"""WeCom's message and media API: ``message/send``, ``update_template_card``, ``recall``,
``media/upload`` (protocol doc §11).

Checks run in this order: corp token, msgtype (40008), agentid (40056 missing, 301002 not the
token's app), recipients (82001 all empty), the body of the msgtype, then delivery: members
outside the visible range are listed in ``invaliduser`` (81013 when nobody is left), and the
others get the message unless the duplicate check or a per-member limit holds it back — both
silently, as WeCom does. Every accepted send is recorded for ``GET /_sim/sent``.
"""

from __future__ import annotations

from typing import Any

from simulator.calls import ApiCall, Endpoint, JsonObject
from simulator.installs import Corp
from simulator.media import DEFAULT_IMAGE_MAX_BYTES, MEDIA_TYPES, Media, check_upload
from simulator.message_bodies import check_content, check_msgtype, check_template_card
from simulator.messages import SentMessage, resolve_recipients
from simulator.state import SimulatorState, WeComError

MESSAGE = "/cgi-bin/message"


def _agent(corp: Corp, body: dict[str, Any], mismatch: int) -> None:
    agentid = body.get("agentid")
    if isinstance(agentid, str) and agentid.isdigit():
        agentid = int(agentid)  # WeCom takes the id as a JSON string too
    if not isinstance(agentid, int) or isinstance(agentid, bool):
        raise WeComError(40056, "invalid agentid")
    if agentid != corp.agent_id:
        raise WeComError(mismatch, "no privilege to access/modify the agent")


class MessageApi:
    """The message and media operations over :class:`SimulatorState`."""

    def __init__(self, state: SimulatorState, *, image_max_bytes: int | None = None) -> None:
        self._state = state
        self._image_max = image_max_bytes or DEFAULT_IMAGE_MAX_BYTES

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(f"{MESSAGE}/send", "POST", "access_token", self.send),
            Endpoint(f"{MESSAGE}/update_template_card", "POST", "access_token", self.update_card),
            Endpoint(f"{MESSAGE}/recall", "POST", "access_token", self.recall),
            # path/96484 and protocol doc §11.6 show this success with an empty errmsg.
            Endpoint(
                "/cgi-bin/media/upload",
                "POST",
                "access_token",
                self.upload,
                "multipart",
                ok_errmsg="",
            ),
        ]

    def _corp(self, call: ApiCall) -> Corp:
        return self._state.installs.check_corp_token(call.query["access_token"])

    async def send(self, call: ApiCall) -> JsonObject:
        """§11.1: validate, resolve recipients, deliver, record; msgid (and response_code)."""
        corp = self._corp(call)
        body = call.body
        msgtype = check_msgtype(body)
        _agent(corp, body, 301002)
        recipients = resolve_recipients(corp, body)
        wants_code = check_content(
            body, msgtype, lambda media_id: self._state.media.is_valid(corp.corp_id, media_id)
        )
        lists = {
            "invaliduser": "|".join(recipients.invalid_users),
            "invalidparty": "|".join(recipients.invalid_parties),
            "invalidtag": "|".join(recipients.invalid_tags),
        }
        if not recipients.users:
            raise WeComError(81013, "user & party & tag all invalid", **lists)
        outcomes = self._state.outbox.deliver(corp, body, recipients.users)
        outcomes.update(dict.fromkeys(recipients.invalid_users, "invalid"))
        message = SentMessage(
            msgid=self._state.new_msgid(),
            corp_id=corp.corp_id,
            agent_id=corp.agent_id,
            sent_at=self._state.clock(),
            body=body,
            outcomes=outcomes,
            invalid_parties=recipients.invalid_parties,
            invalid_tags=recipients.invalid_tags,
            response_code=self._state.new_msgid() if wants_code else None,
        )
        self._state.outbox.record(message)
        answer: JsonObject = {**lists, "unlicenseduser": "", "msgid": message.msgid}
        if message.response_code is not None:
            answer["response_code"] = message.response_code
        return answer

    async def update_card(self, call: ApiCall) -> JsonObject:
        """§11.4: replace a sent card's button or the whole card, once per response_code."""
        corp = self._corp(call)
        body = call.body
        _agent(corp, body, 42015)
        button, card = body.get("button"), body.get("template_card")
        if isinstance(button, dict) and isinstance(button.get("replace_name"), str):
            pass
        elif isinstance(card, dict):
            check_template_card(card)
        else:
            raise WeComError(40058, "invalid parameter, button.replace_name or template_card")
        message = self._state.outbox.use_response_code(body.get("response_code"))
        if message.corp_id != corp.corp_id:
            raise WeComError(42015, "response_code of another app")
        userids = body.get("userids") or []
        if not isinstance(userids, list):
            raise WeComError(40058, "invalid parameter userids")
        reached = {user for user, out in message.outcomes.items() if out == "delivered"}
        # Protocol doc: targets should be among the original recipients; others are invalid.
        invalid = [str(user) for user in userids if user not in reached]
        message.updates.append(body)
        return {"invaliduser": invalid}

    async def recall(self, call: ApiCall) -> JsonObject:
        """§11.5: recall a message this app sent within 24 hours."""
        corp = self._corp(call)
        self._state.outbox.recall(corp, call.body.get("msgid"))
        return {}

    async def upload(self, call: ApiCall) -> JsonObject:
        """§11.6: a temporary media file → its media_id (valid 3 days, string created_at)."""
        corp = self._corp(call)
        media_type = call.query.get("type")
        upload = call.files.get("media")
        if upload is None:
            # Without the "media" part a bad type is still the first complaint.
            if media_type not in MEDIA_TYPES:
                raise WeComError(40005, "invalid file type parameter")
            raise WeComError(44001, "empty media data")
        checked = check_upload(media_type, upload.filename, upload.size, self._image_max)
        created_at = int(self._state.clock())
        media = Media(
            media_id=f"{self._state.new_msgid()}{self._state.new_msgid()}",
            corp_id=corp.corp_id,
            type=checked,
            filename=upload.filename,
            size=upload.size,
            created_at=created_at,
        )
        self._state.media.add(media)
        return {"type": checked, "media_id": media.media_id, "created_at": str(created_at)}
