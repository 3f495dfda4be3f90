"""The simulator's media checks and OAuth codes, on a clock the test moves."""

from __future__ import annotations

import pytest

from simulator.media import MB, MEDIA_TTL_S, Media, MediaStore, check_upload
from simulator.oauth import OAuth
from simulator.settings import SimulatorSettings
from simulator.state_types import WeComError
from tests.support.simulator import SimClock


def counter() -> OAuth:
    values = iter(range(1000))
    clock = SimClock()
    return OAuth(clock, lambda length: f"v{next(values)}".ljust(length, "x"))


@pytest.mark.parametrize(
    ("media_type", "filename", "size", "errcode"),
    [
        (None, "a.png", 100, 40005),
        ("sticker", "a.png", 100, 40005),
        ("image", "a.png", 0, 44001),
        ("image", "a.png", 5, 40009),
        ("image", "a.png", 2 * MB + 1, 40009),
        ("image", "a.gif", 100, 40004),
        ("voice", "a.mp3", 100, 40004),
        ("voice", "a.amr", 2 * MB + 1, 40006),
        ("video", "a.mp4", 10 * MB + 1, 40011),
        ("file", "a.bin", 20 * MB + 1, 40006),
    ],
)
def test_upload_refusals(media_type: str | None, filename: str, size: int, errcode: int) -> None:
    """Type, format and size are checked with the protocol doc's codes."""
    with pytest.raises(WeComError) as caught:
        check_upload(media_type, filename, size, 2 * MB)
    assert caught.value.errcode == errcode


def test_upload_accepts_within_limits() -> None:
    """2 MB PNG, AMR voice and any 20 MB file pass; the image limit is configurable."""
    assert check_upload("image", "a.PNG", 2 * MB, 2 * MB) == "image"
    assert check_upload("voice", "v.amr", 6, 2 * MB) == "voice"
    assert check_upload("file", "x", 20 * MB, 2 * MB) == "file"
    assert check_upload("image", "a.jpg", 10 * MB, 10 * MB) == "image"


def test_media_is_valid_three_days_in_its_corp() -> None:
    """A media id works for its own corp until three days have passed."""
    clock = SimClock()
    store = MediaStore(clock)
    store.add(Media("m1", "wwcorp", "image", "a.png", 10, int(clock())))
    assert store.is_valid("wwcorp", "m1")
    assert not store.is_valid("wwother", "m1")
    clock.advance(MEDIA_TTL_S)
    assert not store.is_valid("wwcorp", "m1")


def test_oauth_code_is_single_use() -> None:
    """The second use of a code is 40029."""
    oauth = counter()
    code = oauth.issue_code("wwcorp", "alice", "snsapi_base")
    sign_in, ticket = oauth.use_code(code)
    assert (sign_in.corp_id, sign_in.user_id, ticket) == ("wwcorp", "alice", None)
    with pytest.raises(WeComError) as again:
        oauth.use_code(code)
    assert again.value.errcode == 40029


def test_oauth_code_expires_after_five_minutes() -> None:
    """A code used at its 300th second is 40029."""
    oauth = counter()
    code = oauth.issue_code("wwcorp", "alice", "snsapi_base")
    assert isinstance(oauth.clock, SimClock)
    oauth.clock.advance(300)
    with pytest.raises(WeComError) as expired:
        oauth.use_code(code)
    assert expired.value.errcode == 40029


def test_privateinfo_scope_yields_a_user_ticket() -> None:
    """snsapi_privateinfo gives a ticket that works until 7200 s (84014), unknown is 84015."""
    oauth = counter()
    _, ticket = oauth.use_code(oauth.issue_code("wwcorp", "alice", "snsapi_privateinfo"))
    assert ticket is not None
    assert oauth.use_ticket(ticket.value).user_id == "alice"
    assert isinstance(oauth.clock, SimClock)
    oauth.clock.advance(7200)
    with pytest.raises(WeComError) as expired:
        oauth.use_ticket(ticket.value)
    with pytest.raises(WeComError) as unknown:
        oauth.use_ticket("nope")
    assert (expired.value.errcode, unknown.value.errcode) == (84014, 84015)


def test_settings_parse_the_ip_allowlist_and_send_limits() -> None:
    """Commas or semicolons separate entries; SIM_LIMITS=off turns the send limits off."""
    settings = SimulatorSettings(sim_ip_allowlist="10.0.0.1; 192.168.1.*", sim_limits=False)
    assert settings.ip_allowlist == ("10.0.0.1", "192.168.1.*")
    assert (settings.send_limits.per_minute, settings.send_limits.per_hour) == (None, None)
    assert SimulatorSettings(sim_send_limit_minute=0).send_limits.per_minute is None
    with pytest.raises(ValueError, match="IPv4"):
        SimulatorSettings(sim_ip_allowlist="example.com")
