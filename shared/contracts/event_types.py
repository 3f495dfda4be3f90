"""The name of every event type on the bus, as constants: producers, consumers, bindings and
the payload registries all spell a type through these names, never as a string literal.

A type is also its routing key on ``wecom.events`` (``notify.request`` on ``wecom.notify``).
Callback types follow WeCom's names: ``command.<InfoType>``, ``data.message.<MsgType>`` and
``data.event.<Event>``, lower-cased; a callback type not listed here still travels under its
own name.
"""

from __future__ import annotations

from typing import Final

# --- Instruction callbacks (指令回调) ------------------------------------------------------------

COMMAND_SUITE_TICKET: Final = "command.suite_ticket"
COMMAND_CREATE_AUTH: Final = "command.create_auth"
COMMAND_CHANGE_AUTH: Final = "command.change_auth"
COMMAND_CANCEL_AUTH: Final = "command.cancel_auth"
COMMAND_RESET_PERMANENT_CODE: Final = "command.reset_permanent_code"
COMMAND_CHANGE_CONTACT: Final = "command.change_contact"
COMMAND_SHARE_AGENT_CHANGE: Final = "command.share_agent_change"
COMMAND_SHARE_CHAIN_CHANGE: Final = "command.share_chain_change"
COMMAND_CORP_ARCH_AUTH: Final = "command.corp_arch_auth"
COMMAND_APPROVE_SPECIAL_AUTH: Final = "command.approve_special_auth"
COMMAND_CANCEL_SPECIAL_AUTH: Final = "command.cancel_special_auth"
COMMAND_CHANGE_EDITION: Final = "command.change_editon"  # sic: WeCom's InfoType spelling
COMMAND_REGISTER_CORP: Final = "command.register_corp"
COMMAND_DEL_AUTH: Final = "command.del_auth"
COMMAND_CHANGE_APP_ADMIN: Final = "command.change_app_admin"

# --- Data callbacks (数据回调): messages --------------------------------------------------------

DATA_MESSAGE_TEXT: Final = "data.message.text"
DATA_MESSAGE_IMAGE: Final = "data.message.image"
DATA_MESSAGE_VOICE: Final = "data.message.voice"
DATA_MESSAGE_VIDEO: Final = "data.message.video"
DATA_MESSAGE_LOCATION: Final = "data.message.location"
DATA_MESSAGE_LINK: Final = "data.message.link"

# --- Data callbacks (数据回调): events ----------------------------------------------------------

DATA_EVENT_SUBSCRIBE: Final = "data.event.subscribe"
DATA_EVENT_UNSUBSCRIBE: Final = "data.event.unsubscribe"
DATA_EVENT_ENTER_AGENT: Final = "data.event.enter_agent"
DATA_EVENT_LOCATION: Final = "data.event.location"
DATA_EVENT_CLICK: Final = "data.event.click"
DATA_EVENT_VIEW: Final = "data.event.view"
DATA_EVENT_SCANCODE_PUSH: Final = "data.event.scancode_push"
DATA_EVENT_SCANCODE_WAITMSG: Final = "data.event.scancode_waitmsg"
DATA_EVENT_PIC_SYSPHOTO: Final = "data.event.pic_sysphoto"
DATA_EVENT_PIC_PHOTO_OR_ALBUM: Final = "data.event.pic_photo_or_album"
DATA_EVENT_PIC_WEIXIN: Final = "data.event.pic_weixin"
DATA_EVENT_LOCATION_SELECT: Final = "data.event.location_select"
DATA_EVENT_TEMPLATE_CARD_EVENT: Final = "data.event.template_card_event"
DATA_EVENT_TEMPLATE_CARD_MENU_EVENT: Final = "data.event.template_card_menu_event"
DATA_EVENT_CHANGE_APP_ADMIN: Final = "data.event.change_app_admin"
DATA_EVENT_CLOSE_INACTIVE_AGENT: Final = "data.event.close_inactive_agent"
DATA_EVENT_REOPEN_INACTIVE_AGENT: Final = "data.event.reopen_inactive_agent"
DATA_EVENT_CHANGE_CONTACT: Final = "data.event.change_contact"
DATA_EVENT_TASKCARD_CLICK: Final = "data.event.taskcard_click"

# --- Events our services publish ----------------------------------------------------------------

INSTALL_REDIRECT: Final = "install.redirect"
AUTH_GRANTED: Final = "auth.granted"
AUTH_CHANGED: Final = "auth.changed"
AUTH_REVOKED: Final = "auth.revoked"
AUTH_REJECTED: Final = "auth.rejected"
AUTH_QUOTA_WARNING: Final = "auth.quota_warning"
AUTH_LOST: Final = "auth.lost"
NOTIFY_RESULT: Final = "notify.result"

# --- Messages that are not events ---------------------------------------------------------------

NOTIFY_REQUEST: Final = "notify.request"
"""A notification request on ``wecom.notify`` (the AMQP ``type`` of its message)."""
