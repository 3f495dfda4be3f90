"""The typed payload of every known WeCom callback (``command.*``, ``data.message.*``,
``data.event.*``), registered in :data:`PAYLOAD_MODELS` under its event type."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, AliasPath, BaseModel, BeforeValidator, ConfigDict, Field

from shared.contracts import event_types
from shared.contracts.envelope import Payload, RequiredText

# One model per known callback event, registered in PAYLOAD_MODELS under its event type. Each
# validates both shapes of its data: the XML fields of a decrypted callback (PascalCase, as in
# ``raw``) and its own snake_case dump, so a consumer can re-validate ``payload`` off the bus.
# Envelope-level fields (SuiteId, TimeStamp/CreateTime, InfoType/MsgType/Event) are not repeated.


def _blank_to_none(value: Any) -> Any:
    """An empty element (``<AgentID></AgentID>``) means "absent" for a number."""
    return None if value == "" else value


def _split_commas(value: Any) -> Any:
    """``"1,2,3"`` → ``["1", "2", "3"]``; an empty element is an empty list."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in (item.strip() for item in value.split(",")) if part]
    return value


def _children(value: Any) -> Any:
    """The items of a list-like element: ``<List><Item>a</Item><Item>b</Item></List>``.

    The parser gives ``{"Item": ["a", "b"]}`` (or ``{"Item": "a"}`` for one item) whatever the
    item element is called, ``""`` for an empty list, and a bare text for a list written as
    one leaf; an actual list (a payload read back off the bus) is kept as it is.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        items: list[Any] = []
        for child in value.values():
            items.extend(child if isinstance(child, list) else [child])
        return items
    return value


def _pic_md5_sums(value: Any) -> Any:
    """``<PicList><item><PicMd5Sum>…</PicMd5Sum></item>…</PicList>`` → the list of sums."""
    items = _children(value)
    if not isinstance(items, list):
        return items
    return [item.get("PicMd5Sum", "") if isinstance(item, dict) else item for item in items]


_OptionalInt = Annotated[int | None, BeforeValidator(_blank_to_none)]
_OptionalFloat = Annotated[float | None, BeforeValidator(_blank_to_none)]
_CommaList = Annotated[list[str], BeforeValidator(_split_commas)]
_IntCommaList = Annotated[list[int], BeforeValidator(_split_commas)]
_ChildList = Annotated[list[str], BeforeValidator(_children)]

_XML_FIELDS = ConfigDict(
    frozen=True,
    extra="ignore",
    validate_by_alias=True,
    validate_by_name=True,
    # A dump always has every field, so the published schema marks them all required.
    json_schema_serialization_defaults_required=True,
)


class _CallbackPayload(Payload):
    """Base of the callback payloads: XML names are validation aliases, dumps use snake_case."""

    model_config = _XML_FIELDS


# Instruction callbacks (指令回调): command.<InfoType>


class SuiteTicketPayload(_CallbackPayload):
    """``command.suite_ticket``: the ticket that mints suite access tokens, pushed every 10 min."""

    suite_ticket: RequiredText = Field(
        validation_alias="SuiteTicket", description="valid 30 minutes; always use the latest"
    )


class CreateAuthPayload(_CallbackPayload):
    """``command.create_auth``: an enterprise or member installed the app."""

    auth_code: RequiredText = Field(
        validation_alias="AuthCode",
        description="temporary auth code for get_permanent_code; single use, valid 10 minutes",
    )
    state: str | None = Field(
        None, validation_alias="State", description="state of the install link"
    )


class ChangeAuthPayload(_CallbackPayload):
    """``command.change_auth``: the grant changed (visible range, authorisation mode)."""

    auth_corp_id: RequiredText = Field(validation_alias="AuthCorpId")
    state: str | None = Field(None, validation_alias="State")


class CancelAuthPayload(_CallbackPayload):
    """``command.cancel_auth``: the enterprise uninstalled the app; its permanent code is void."""

    auth_corp_id: RequiredText = Field(validation_alias="AuthCorpId")


class ResetPermanentCodePayload(_CallbackPayload):
    """``command.reset_permanent_code``: exchange the new auth code for a new permanent code."""

    auth_code: RequiredText = Field(
        validation_alias="AuthCode", description="temporary auth code, valid 10 minutes"
    )


class ContactExtAttr(BaseModel):
    """One custom attribute of a member (``ExtAttr/Item``)."""

    model_config = _XML_FIELDS

    name: str | None = Field(None, validation_alias="Name")
    type: _OptionalInt = Field(
        None, validation_alias="Type", description="0 text, 1 web, 2 mini program"
    )
    text: str | None = Field(None, validation_alias=AliasPath("Text", "Value"))
    web_title: str | None = Field(None, validation_alias=AliasPath("Web", "Title"))
    web_url: str | None = Field(None, validation_alias=AliasPath("Web", "Url"))


class _ContactChangeFields(_CallbackPayload):
    """The fields of every ChangeType of a contact change; each type fills its own subset."""

    change_type: RequiredText = Field(
        validation_alias="ChangeType",
        description="create_user, update_user, delete_user, create_party, update_party, "
        "delete_party or update_tag",
    )
    # create_user / update_user / delete_user
    member_user_id: str | None = Field(
        None, validation_alias="UserID", description="userid of the member created/updated/deleted"
    )
    open_user_id: str | None = Field(None, validation_alias="OpenUserID")
    new_user_id: str | None = Field(
        None, validation_alias="NewUserID", description="update_user only, when the userid changed"
    )
    name: str | None = Field(None, validation_alias="Name", description="member or department name")
    department: _CommaList = Field(
        default_factory=list, validation_alias="Department", description="department ids"
    )
    main_department: str | None = Field(None, validation_alias="MainDepartment")
    is_leader_in_dept: _IntCommaList = Field(
        default_factory=list,
        validation_alias="IsLeaderInDept",
        description="1 where the member leads the department at the same index of department",
    )
    direct_leader: _CommaList = Field(default_factory=list, validation_alias="DirectLeader")
    position: str | None = Field(None, validation_alias="Position")
    mobile: str | None = Field(None, validation_alias="Mobile")
    gender: str | None = Field(None, validation_alias="Gender", description="1 male, 2 female")
    email: str | None = Field(None, validation_alias="Email")
    biz_mail: str | None = Field(None, validation_alias="BizMail")
    status: _OptionalInt = Field(
        None, validation_alias="Status", description="1 active, 2 disabled, 4 not yet active"
    )
    avatar: str | None = Field(None, validation_alias="Avatar")
    alias: str | None = Field(None, validation_alias="Alias")
    telephone: str | None = Field(None, validation_alias="Telephone")
    address: str | None = Field(None, validation_alias="Address")
    ext_attr: Annotated[list[ContactExtAttr], BeforeValidator(_children)] = Field(
        default_factory=list, validation_alias="ExtAttr"
    )
    # create_party / update_party / delete_party
    party_id: str | None = Field(None, validation_alias="Id", description="department id")
    parent_id: str | None = Field(None, validation_alias="ParentId")
    order: _OptionalInt = Field(None, validation_alias="Order")
    # update_tag
    tag_id: str | None = Field(None, validation_alias="TagId")
    add_user_items: _CommaList = Field(default_factory=list, validation_alias="AddUserItems")
    del_user_items: _CommaList = Field(default_factory=list, validation_alias="DelUserItems")
    add_party_items: _CommaList = Field(default_factory=list, validation_alias="AddPartyItems")
    del_party_items: _CommaList = Field(default_factory=list, validation_alias="DelPartyItems")


class ContactChangePayload(_ContactChangeFields):
    """``command.change_contact``: a member, department or tag of an authorised corp changed."""

    auth_corp_id: str | None = Field(None, validation_alias="AuthCorpId")


class ShareAgentChangePayload(_CallbackPayload):
    """``command.share_agent_change``: the app was shared or unshared with a linked corp."""

    app_id: str | None = Field(None, validation_alias="AppId")
    corp_id: str | None = Field(None, validation_alias="CorpId", description="the upstream corp")
    agent_id: _OptionalInt = Field(None, validation_alias="AgentId")


class ShareChainChangePayload(ShareAgentChangePayload):
    """``command.share_chain_change``: the app was shared or unshared along an upstream chain."""


class CorpArchAuthPayload(_CallbackPayload):
    """``command.corp_arch_auth``: the corp granted access to its organisation structure."""

    auth_corp_id: str | None = Field(None, validation_alias="AuthCorpId")


class ApproveSpecialAuthPayload(_CallbackPayload):
    """``command.approve_special_auth``: the corp granted a special permission."""

    auth_corp_id: str | None = Field(None, validation_alias="AuthCorpId")
    auth_type: str | None = Field(None, validation_alias="AuthType")


class CancelSpecialAuthPayload(ApproveSpecialAuthPayload):
    """``command.cancel_special_auth``: the corp withdrew a special permission."""


class ChangeEditionPayload(_CallbackPayload):
    """``command.change_editon`` (WeCom's spelling): the paid edition of a corp changed."""

    paid_corp_id: str | None = Field(None, validation_alias="PaidCorpId")


class RegisterCorpPayload(_CallbackPayload):
    """``command.register_corp``: a corp registered through the provider's registration link.

    The contact-sync access token the callback also carries is left in ``raw`` only.
    """

    service_corp_id: str | None = Field(None, validation_alias="ServiceCorpId")
    auth_corp_id: str | None = Field(None, validation_alias="AuthCorpId")
    register_code: str | None = Field(None, validation_alias="RegisterCode")
    template_id: str | None = Field(None, validation_alias="TemplateId")
    state: str | None = Field(None, validation_alias="State")
    auth_user_id: str | None = Field(
        None, validation_alias=AliasPath("AuthUserInfo", "UserId"), description="the registrant"
    )


class DelAuthPayload(_CallbackPayload):
    """``command.del_auth``: an authorisation was deleted."""

    auth_corp_id: str | None = Field(None, validation_alias="AuthCorpId")


# Data callbacks (数据回调): data.message.<MsgType> and data.event.<Event>


class _DataPayload(_CallbackPayload):
    """Fields every data callback carries."""

    user_id: str | None = Field(
        None,
        validation_alias="FromUserName",
        description="the member's userid as this app sees it; 'sys' for system events",
    )
    agent_id: _OptionalInt = Field(
        None,
        # The legacy task-card event spells it AgentId.
        validation_alias=AliasChoices("AgentID", "AgentId"),
        description="the app's agent id in the corp",
    )


class _MessagePayload(_DataPayload):
    msg_id: RequiredText = Field(
        validation_alias="MsgId", description="64-bit message id, as a string; the de-dup key"
    )


class TextMessagePayload(_MessagePayload):
    """``data.message.text``: a member sent the app a text."""

    content: str | None = Field(None, validation_alias="Content")


class ImageMessagePayload(_MessagePayload):
    """``data.message.image``: a member sent the app an image."""

    pic_url: str | None = Field(None, validation_alias="PicUrl")
    media_id: str | None = Field(None, validation_alias="MediaId", description="expires in 3 days")


class VoiceMessagePayload(_MessagePayload):
    """``data.message.voice``: a member sent the app a voice note."""

    media_id: str | None = Field(None, validation_alias="MediaId", description="expires in 3 days")
    format: str | None = Field(None, validation_alias="Format", description="e.g. amr")


class VideoMessagePayload(_MessagePayload):
    """``data.message.video``: a member sent the app a video."""

    media_id: str | None = Field(None, validation_alias="MediaId", description="expires in 3 days")
    thumb_media_id: str | None = Field(None, validation_alias="ThumbMediaId")


class LocationMessagePayload(_MessagePayload):
    """``data.message.location``: a member sent the app a location."""

    latitude: _OptionalFloat = Field(None, validation_alias="Location_X")
    longitude: _OptionalFloat = Field(None, validation_alias="Location_Y")
    scale: _OptionalInt = Field(None, validation_alias="Scale", description="map zoom level")
    label: str | None = Field(None, validation_alias="Label", description="address text")
    app_type: str | None = Field(None, validation_alias="AppType", description="e.g. wxwork")


class LinkMessagePayload(_MessagePayload):
    """``data.message.link``: a member sent the app a link."""

    title: str | None = Field(None, validation_alias="Title")
    description: str | None = Field(None, validation_alias="Description")
    url: str | None = Field(None, validation_alias="Url")
    pic_url: str | None = Field(None, validation_alias="PicUrl")


class SubscribeEventPayload(_DataPayload):
    """``data.event.subscribe``: a member joined the app's visible range (or authorised it)."""


class UnsubscribeEventPayload(_DataPayload):
    """``data.event.unsubscribe``: a member left the app's visible range."""


class _KeyedEventPayload(_DataPayload):
    event_key: str | None = Field(None, validation_alias="EventKey")


class EnterAgentEventPayload(_KeyedEventPayload):
    """``data.event.enter_agent``: a member opened the app."""


class LocationEventPayload(_DataPayload):
    """``data.event.location`` (Event ``LOCATION``): the member's reported position."""

    latitude: _OptionalFloat = Field(None, validation_alias="Latitude")
    longitude: _OptionalFloat = Field(None, validation_alias="Longitude")
    precision: _OptionalFloat = Field(None, validation_alias="Precision")
    app_type: str | None = Field(None, validation_alias="AppType")


class ClickEventPayload(_KeyedEventPayload):
    """``data.event.click``: a member clicked a menu item; ``event_key`` is its key."""


class ViewEventPayload(_KeyedEventPayload):
    """``data.event.view``: a member opened a menu link; ``event_key`` is its URL."""


class ScancodePushEventPayload(_KeyedEventPayload):
    """``data.event.scancode_push``: a member scanned a code from a menu."""

    scan_type: str | None = Field(
        None, validation_alias=AliasPath("ScanCodeInfo", "ScanType"), description="e.g. qrcode"
    )
    scan_result: str | None = Field(None, validation_alias=AliasPath("ScanCodeInfo", "ScanResult"))


class ScancodeWaitmsgEventPayload(ScancodePushEventPayload):
    """``data.event.scancode_waitmsg``: a member scanned a code and waits for the app's reply."""


class PicSysphotoEventPayload(_KeyedEventPayload):
    """``data.event.pic_sysphoto``: a member took photos from a menu."""

    count: _OptionalInt = Field(None, validation_alias=AliasPath("SendPicsInfo", "Count"))
    pic_md5_sums: Annotated[list[str], BeforeValidator(_pic_md5_sums)] = Field(
        default_factory=list, validation_alias=AliasPath("SendPicsInfo", "PicList")
    )


class PicPhotoOrAlbumEventPayload(PicSysphotoEventPayload):
    """``data.event.pic_photo_or_album``: a member sent photos or album pictures from a menu."""


class PicWeixinEventPayload(PicSysphotoEventPayload):
    """``data.event.pic_weixin``: a member sent pictures from the WeCom album from a menu."""


class LocationSelectEventPayload(_KeyedEventPayload):
    """``data.event.location_select``: a member picked a location from a menu."""

    latitude: _OptionalFloat = Field(
        None, validation_alias=AliasPath("SendLocationInfo", "Location_X")
    )
    longitude: _OptionalFloat = Field(
        None, validation_alias=AliasPath("SendLocationInfo", "Location_Y")
    )
    scale: _OptionalInt = Field(None, validation_alias=AliasPath("SendLocationInfo", "Scale"))
    label: str | None = Field(None, validation_alias=AliasPath("SendLocationInfo", "Label"))
    poiname: str | None = Field(None, validation_alias=AliasPath("SendLocationInfo", "Poiname"))
    app_type: str | None = Field(None, validation_alias="AppType")


class SelectedItem(BaseModel):
    """One answered question of a template card (``SelectedItems/SelectedItem``)."""

    model_config = _XML_FIELDS

    question_key: str | None = Field(None, validation_alias="QuestionKey")
    option_ids: _ChildList = Field(
        default_factory=list,
        # WeCom's own sample spells it OpitonIds/OpitonId; SDKs use OptionIds/OptionId.
        validation_alias=AliasChoices("OptionIds", "OpitonIds"),
        description="ids of the options chosen",
    )


class _TemplateCardFields(_KeyedEventPayload):
    task_id: str | None = Field(None, validation_alias="TaskId")
    card_type: str | None = Field(None, validation_alias="CardType")
    response_code: str | None = Field(
        None,
        validation_alias="ResponseCode",
        description="for update_template_card: single use, valid 72 hours",
    )


class TemplateCardEventPayload(_TemplateCardFields):
    """``data.event.template_card_event``: a member clicked a button or submitted a card."""

    selected_items: Annotated[list[SelectedItem], BeforeValidator(_children)] = Field(
        default_factory=list, validation_alias="SelectedItems"
    )


class TemplateCardMenuEventPayload(_TemplateCardFields):
    """``data.event.template_card_menu_event``: a member chose from a card's top-right menu."""


class ChangeAppAdminEventPayload(_DataPayload):
    """``data.event.change_app_admin``: the app's admins changed; refresh get_admin_list."""


class ChangeAppAdminPayload(_DataPayload):
    """``command.change_app_admin``: the same change, delivered to the instruction URL.

    It arrives shaped as a data event (MsgType ``event``, Event ``change_app_admin``) with no
    InfoType; ToUserName names the corp.
    """


class CloseInactiveAgentEventPayload(_DataPayload):
    """``data.event.close_inactive_agent``: the app was disabled after long inactivity."""


class ReopenInactiveAgentEventPayload(_DataPayload):
    """``data.event.reopen_inactive_agent``: the app was enabled again."""


class ContactChangeEventPayload(_ContactChangeFields, _DataPayload):
    """``data.event.change_contact``: a contact change delivered as a data-callback event."""


class TaskcardClickEventPayload(_KeyedEventPayload):
    """``data.event.taskcard_click``: a member clicked a button of a legacy task card."""

    task_id: str | None = Field(None, validation_alias="TaskId")


PAYLOAD_MODELS: dict[str, type[Payload]] = {
    event_types.COMMAND_SUITE_TICKET: SuiteTicketPayload,
    event_types.COMMAND_CREATE_AUTH: CreateAuthPayload,
    event_types.COMMAND_CHANGE_AUTH: ChangeAuthPayload,
    event_types.COMMAND_CANCEL_AUTH: CancelAuthPayload,
    event_types.COMMAND_RESET_PERMANENT_CODE: ResetPermanentCodePayload,
    event_types.COMMAND_CHANGE_CONTACT: ContactChangePayload,
    event_types.COMMAND_SHARE_AGENT_CHANGE: ShareAgentChangePayload,
    event_types.COMMAND_SHARE_CHAIN_CHANGE: ShareChainChangePayload,
    event_types.COMMAND_CORP_ARCH_AUTH: CorpArchAuthPayload,
    event_types.COMMAND_APPROVE_SPECIAL_AUTH: ApproveSpecialAuthPayload,
    event_types.COMMAND_CANCEL_SPECIAL_AUTH: CancelSpecialAuthPayload,
    event_types.COMMAND_CHANGE_EDITION: ChangeEditionPayload,
    event_types.COMMAND_REGISTER_CORP: RegisterCorpPayload,
    event_types.COMMAND_DEL_AUTH: DelAuthPayload,
    event_types.COMMAND_CHANGE_APP_ADMIN: ChangeAppAdminPayload,
    event_types.DATA_MESSAGE_TEXT: TextMessagePayload,
    event_types.DATA_MESSAGE_IMAGE: ImageMessagePayload,
    event_types.DATA_MESSAGE_VOICE: VoiceMessagePayload,
    event_types.DATA_MESSAGE_VIDEO: VideoMessagePayload,
    event_types.DATA_MESSAGE_LOCATION: LocationMessagePayload,
    event_types.DATA_MESSAGE_LINK: LinkMessagePayload,
    event_types.DATA_EVENT_SUBSCRIBE: SubscribeEventPayload,
    event_types.DATA_EVENT_UNSUBSCRIBE: UnsubscribeEventPayload,
    event_types.DATA_EVENT_ENTER_AGENT: EnterAgentEventPayload,
    event_types.DATA_EVENT_LOCATION: LocationEventPayload,
    event_types.DATA_EVENT_CLICK: ClickEventPayload,
    event_types.DATA_EVENT_VIEW: ViewEventPayload,
    event_types.DATA_EVENT_SCANCODE_PUSH: ScancodePushEventPayload,
    event_types.DATA_EVENT_SCANCODE_WAITMSG: ScancodeWaitmsgEventPayload,
    event_types.DATA_EVENT_PIC_SYSPHOTO: PicSysphotoEventPayload,
    event_types.DATA_EVENT_PIC_PHOTO_OR_ALBUM: PicPhotoOrAlbumEventPayload,
    event_types.DATA_EVENT_PIC_WEIXIN: PicWeixinEventPayload,
    event_types.DATA_EVENT_LOCATION_SELECT: LocationSelectEventPayload,
    event_types.DATA_EVENT_TEMPLATE_CARD_EVENT: TemplateCardEventPayload,
    event_types.DATA_EVENT_TEMPLATE_CARD_MENU_EVENT: TemplateCardMenuEventPayload,
    event_types.DATA_EVENT_CHANGE_APP_ADMIN: ChangeAppAdminEventPayload,
    event_types.DATA_EVENT_CLOSE_INACTIVE_AGENT: CloseInactiveAgentEventPayload,
    event_types.DATA_EVENT_REOPEN_INACTIVE_AGENT: ReopenInactiveAgentEventPayload,
    event_types.DATA_EVENT_CHANGE_CONTACT: ContactChangeEventPayload,
    event_types.DATA_EVENT_TASKCARD_CLICK: TaskcardClickEventPayload,
}
"""The typed payload model of every known callback event type."""
