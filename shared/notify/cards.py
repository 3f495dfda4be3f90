"""Template cards (protocol doc §11.3): the five card types and their parts."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from shared.notify.fields import (
    _AppId,
    _Key,
    _Label,
    _MediaId,
    _Model,
    _OptionId,
    _PagePath,
    _require_by_type,
    _TaskId,
    _Url,
    _UserId,
)
from shared.notify.media import _Body

# --- template_card (§11.3) ----------------------------------------------------------------------


class CardSource(_Model):
    icon_url: _Url | None = None
    desc: _Label | None = None
    desc_color: Literal[0, 1, 2, 3] = Field(0, description="0 grey, 1 black, 2 red, 3 green")


class ActionMenuItem(_Model):
    text: _Label
    key: _Key


class ActionMenu(_Model):
    desc: _Label | None = None
    action_list: list[ActionMenuItem] = Field(min_length=1, max_length=3)


class MainTitle(_Model):
    title: _Label | None = None
    desc: _Label | None = None


class QuoteArea(_Model):
    type: Literal[0, 1, 2] = Field(0, description="0 none, 1 url, 2 mini-program")
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None
    title: _Label | None = None
    quote_text: _Label | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class HorizontalContent(_Model):
    type: Literal[0, 1, 2, 3] = Field(0, description="0 text, 1 url, 2 file, 3 member")
    keyname: _Label
    value: _Label | None = None
    url: _Url | None = None
    media_id: _MediaId | None = None
    userid: _UserId | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(
            self.type,
            {1: ("url", self.url), 2: ("media_id", self.media_id), 3: ("userid", self.userid)},
        )
        return self


class JumpItem(_Model):
    type: Literal[0, 1, 2] = Field(0, description="0 none, 1 url, 2 mini-program")
    title: _Label
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class CardAction(_Model):
    type: Literal[0, 1, 2] = Field(0, description="0 none, 1 url, 2 mini-program")
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class EmphasisContent(_Model):
    title: _Label | None = None
    desc: _Label | None = None


class CardImage(_Model):
    url: _Url
    aspect_ratio: float | None = Field(None, ge=1.3, le=2.25, description="default 1.3")


class ImageTextArea(_Model):
    type: Literal[0, 1, 2] = 0
    url: _Url | None = None
    appid: _AppId | None = None
    pagepath: _PagePath | None = None
    title: _Label | None = None
    desc: _Label | None = None
    image_url: _Url

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {1: ("url", self.url), 2: ("appid", self.appid)})
        return self


class VerticalContent(_Model):
    title: _Label
    desc: _Label | None = None


class CardButton(_Model):
    text: _Label
    style: Literal[1, 2, 3, 4] | None = None
    type: Literal[0, 1] = Field(0, description="0 callback (needs key), 1 url")
    key: _Key | None = None
    url: _Url | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        _require_by_type(self.type, {0: ("key", self.key), 1: ("url", self.url)})
        return self


class SelectOption(_Model):
    id: _OptionId = Field(description="≤ 128 bytes")
    text: _Label


class ButtonSelection(_Model):
    question_key: _Key
    title: _Label | None = None
    selected_id: _OptionId | None = None
    option_list: list[SelectOption] = Field(min_length=1, max_length=10)


class CheckboxOption(_Model):
    id: _OptionId
    text: _Label
    is_checked: bool = False


class Checkbox(_Model):
    question_key: _Key
    mode: Literal[0, 1] = Field(0, description="0 single choice, 1 multiple choice")
    option_list: list[CheckboxOption] = Field(min_length=1, max_length=20)


class SubmitButton(_Model):
    text: _Label
    key: _Key


class SelectItem(_Model):
    question_key: _Key
    title: _Label | None = None
    selected_id: _OptionId | None = None
    option_list: list[SelectOption] = Field(min_length=1, max_length=10)


def _unique_keys(keys: list[str], what: str) -> None:
    if len(set(keys)) != len(keys):
        raise ValueError(f"{what} must be unique")


class _CardBase(_Body):
    """Fields every card type accepts. Length ranges the doc gives as UI guidance are not
    enforced (they differ between doc revisions); ids, keys and counts are."""

    card_type: str
    interactive: ClassVar[bool] = False

    source: CardSource | None = None
    action_menu: ActionMenu | None = None
    main_title: MainTitle | None = None
    task_id: _TaskId | None = Field(None, description="unique per app; [0-9A-Za-z_-@] ≤ 128 B")
    quote_area: QuoteArea | None = None
    sub_title_text: _Label | None = None
    horizontal_content_list: list[HorizontalContent] = Field(default_factory=list, max_length=6)
    jump_list: list[JumpItem] = Field(default_factory=list, max_length=3)
    card_action: CardAction | None = None

    @model_validator(mode="after")
    def _task_id_when_needed(self) -> Self:
        if self.task_id is None and self.interactive:
            raise ValueError(f"task_id is required for {self.card_type}")
        if self.task_id is None and self.action_menu is not None:
            raise ValueError("task_id is required with action_menu")
        return self


def _check_notice_action(action: CardAction) -> None:
    if action.type == 0:
        raise ValueError("card_action.type must be 1 (url) or 2 (mini-program)")


class TextNoticeCard(_CardBase):
    card_type: Literal["text_notice"]
    emphasis_content: EmphasisContent | None = None
    card_action: CardAction

    @model_validator(mode="after")
    def _action(self) -> Self:
        _check_notice_action(self.card_action)
        return self


class NewsNoticeCard(_CardBase):
    card_type: Literal["news_notice"]
    card_image: CardImage | None = None
    image_text_area: ImageTextArea | None = None
    vertical_content_list: list[VerticalContent] = Field(default_factory=list, max_length=4)
    card_action: CardAction

    @model_validator(mode="after")
    def _image_and_action(self) -> Self:
        if self.card_image is None and self.image_text_area is None:
            raise ValueError("card_image or image_text_area is required")
        _check_notice_action(self.card_action)
        return self


class ButtonInteractionCard(_CardBase):
    card_type: Literal["button_interaction"]
    interactive = True
    button_selection: ButtonSelection | None = None
    button_list: list[CardButton] = Field(min_length=1, max_length=6)

    @model_validator(mode="after")
    def _keys(self) -> Self:
        _unique_keys([b.key for b in self.button_list if b.key is not None], "button keys")
        return self


class VoteInteractionCard(_CardBase):
    card_type: Literal["vote_interaction"]
    interactive = True
    checkbox: Checkbox
    submit_button: SubmitButton


class MultipleInteractionCard(_CardBase):
    card_type: Literal["multiple_interaction"]
    interactive = True
    select_list: list[SelectItem] = Field(min_length=1, max_length=3)
    submit_button: SubmitButton

    @model_validator(mode="after")
    def _keys(self) -> Self:
        _unique_keys([item.question_key for item in self.select_list], "question keys")
        return self


TemplateCard = Annotated[
    TextNoticeCard
    | NewsNoticeCard
    | ButtonInteractionCard
    | VoteInteractionCard
    | MultipleInteractionCard,
    Field(discriminator="card_type"),
]
CARD_TYPES = frozenset(
    {"text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction"}
)
