"""The simulator's settings: the services' ``WECOM_*`` names plus its own ``SIM_*`` ones.

Using the same ``WECOM_*`` names as the services means one ``.env`` pairs a simulator with
the services it stands in for; without them the public sandbox values apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from shared.settings import LogSettings, WeComAppSettings
from simulator.limits import InstallLimits
from simulator.media import DEFAULT_IMAGE_MAX_BYTES
from simulator.messages import SendLimits

# Who signs in and installs on the simulator's pages when the URL names nobody
# (?sim_corp=/?sim_user=). Public sandbox values, like the rest of shared.sandbox.
SANDBOX_DEFAULT_CORP = "wwsandboxcorp0001"
SANDBOX_DEFAULT_USER = "sandboxuser"
# A trusted domain: host[:port] (a bracketed IPv6 address too), or empty for no check.
TRUSTED_DOMAIN = r"^(([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?)?$"


class SimulatorSettings(WeComAppSettings, LogSettings):
    """Environment of ``wecom-suite simulator`` (see docs/simulator.md)."""

    # Started on its own with real WECOM_* credentials the simulator refuses to run, unless
    # this says so: it would push callbacks signed with them (simulator/service.py).
    sim_allow_real_credentials: bool = False
    sim_command_url: str | None = None
    sim_data_url: str | None = None
    sim_http_host: str = "127.0.0.1"
    sim_http_port: int = Field(8081, ge=0, le=65535)
    sim_ticket_interval_s: float = Field(600, gt=0, le=86_400)
    # A fresh simulator pushes a ticket at once, so its pair can mint a suite token without
    # waiting a whole interval; tests that count deliveries switch this off.
    sim_ticket_on_start: bool = True
    sim_ticket_ttl_s: float = Field(1800, gt=0, le=86_400)
    sim_token_ttl_s: float = Field(7200, gt=0, le=864_000)
    sim_pre_auth_code_ttl_s: float = Field(1200, gt=0, le=86_400)
    sim_auth_code_ttl_s: float = Field(600, gt=0, le=86_400)
    # Protocol doc §13.3; SIM_LIMITS=off switches all of them off, 0 switches one off.
    sim_limits: bool = True
    sim_limit_corps: int = Field(10, ge=0)
    sim_limit_users: int = Field(100, ge=0)
    sim_limit_test_accounts: int = Field(10, ge=0)
    sim_limit_test_exclusive: bool = True
    # Where a redirect install (§8.4) sends the browser: the gateway's install-complete page.
    sim_install_redirect_url: str = "http://127.0.0.1:8080/install/complete"
    sim_seed: int | None = None
    # Where the state is kept across restarts (simulator/persistence.py); unset: memory only.
    # `wecom-suite run` in sandbox mode defaults it to DATA_DIR/simulator-state.json.
    sim_state_file: Path | None = None
    # Web sign-in (protocol doc §9): OAuth codes live 5 minutes.
    sim_oauth_code_ttl_s: float = Field(300, gt=0, le=86_400)
    sim_default_corp: str = Field(SANDBOX_DEFAULT_CORP, pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    sim_default_user: str = Field(SANDBOX_DEFAULT_USER, pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    # WeCom lets only members in the app's visible range sign in. "default" auto-installs the
    # default member only (so the sandbox sign-in demo works), "on" anyone, "off" nobody.
    sim_oauth_auto_install: Literal["off", "default", "on"] = "default"
    # §9.1: OAuth redirects only to the app's trusted domain (可信域名), host[:port], exact
    # match incl. port; a mismatch is 50001 (§12). Empty: not checked.
    sim_trusted_domain: str = Field("", pattern=TRUSTED_DOMAIN)
    # §15 q4: how a further member of a corp that has the app is reported: create_auth
    # (as for every install) or a data-callback subscribe event (the visible range grew).
    sim_later_members: Literal["create_auth", "subscribe"] = "create_auth"
    # §8.11: get_app_qrcode serves the install QR code only for a released (online) app.
    sim_app_released: bool = True
    # The app's business-settings URL (业务设置URL) an admin is sent to from WeCom's console.
    sim_business_settings_url: str = "http://127.0.0.1:8080/admin"
    # Protocol doc §1.2: API calls only from whitelisted IPs (60020). Empty: no check.
    sim_ip_allowlist: str = ""
    # Protocol doc §11.7, per app and member; 0 switches one window off.
    sim_send_limit_minute: int = Field(30, ge=0)
    sim_send_limit_hour: int = Field(1000, ge=0)
    # The windows' lengths: WeCom's minute and hour; tests shrink them.
    sim_send_window_minute_s: float = Field(60.0, gt=0, le=86_400)
    sim_send_window_hour_s: float = Field(3600.0, gt=0, le=86_400)
    # §11.7's daily per-app budget is "seats x 200" person-times (45009), and a member-
    # authorised corp's seat count is unknown: no number in the doc, so off (0) by default.
    sim_send_limit_app_day: int = Field(0, ge=0)
    # Protocol doc §11.6 gives 2 MB and 10 MB for images; the stricter one by default.
    sim_media_image_max_bytes: int = Field(DEFAULT_IMAGE_MAX_BYTES, gt=5, le=10 * 1024 * 1024)
    sim_callback_timeout_s: float = Field(5.0, gt=0, le=60)
    # Protocol doc §5.2: create_auth, change_auth and cancel_auth must be answered in 1000 ms.
    sim_install_callback_timeout_s: float = Field(1.0, gt=0, le=60)
    # Protocol doc §4: "总共重试三次" is ambiguous (3 attempts or 3 retries); we read it as
    # three retries after the first attempt. Open question, hence configurable.
    sim_callback_retries: int = Field(3, ge=0, le=10)
    # Retry spacing is undocumented (protocol doc §4); one second keeps tests and demos quick.
    sim_callback_retry_delay_s: float = Field(1.0, ge=0, le=60)

    @field_validator("sim_ip_allowlist")
    @classmethod
    def _check_allowlist(cls, value: str) -> str:
        for entry in _entries(value):
            if ":" in entry:
                continue  # an IPv6 address, matched exactly
            if not all(part == "*" or part.isdigit() for part in entry.split(".")):
                raise ValueError(f"{entry!r} is not an IPv4 address or pattern like 10.0.0.*")
        return value

    @property
    def ip_allowlist(self) -> tuple[str, ...]:
        """The allowed peer IPs (``*`` matches one octet); empty when the check is off."""
        return tuple(_entries(self.sim_ip_allowlist))

    @property
    def send_limits(self) -> SendLimits:
        """The send limits, as configured (all off with ``SIM_LIMITS=off``)."""
        windows = {
            "minute_s": self.sim_send_window_minute_s,
            "hour_s": self.sim_send_window_hour_s,
        }
        if not self.sim_limits:
            return SendLimits(per_minute=None, per_hour=None, per_app_day=None, **windows)
        return SendLimits(
            per_minute=self.sim_send_limit_minute or None,
            per_hour=self.sim_send_limit_hour or None,
            per_app_day=self.sim_send_limit_app_day or None,
            **windows,
        )

    @property
    def install_limits(self) -> InstallLimits:
        """The install limits of an individual developer's app, as configured."""
        return InstallLimits(
            enabled=self.sim_limits,
            corps=self.sim_limit_corps or None,
            users=self.sim_limit_users or None,
            test_accounts=self.sim_limit_test_accounts or None,
            exclusive=self.sim_limit_test_exclusive,
        )


def _entries(value: str) -> list[str]:
    # WeCom's console separates entries with ";"; the brief's setting uses ","; take both.
    return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
