"""The simulator's settings: the services' ``WECOM_*`` names plus its own ``SIM_*`` ones.

Using the same ``WECOM_*`` names as the services means one ``.env`` pairs a simulator with
the services it stands in for; without them the public sandbox values apply.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import LogSettings, WeComAppSettings
from simulator.limits import InstallLimits

# shared.sandbox has no provider secret yet; the simulator needs one to answer
# get_provider_token in sandbox mode. Public on purpose, like the other sandbox values.
SANDBOX_PROVIDER_SECRET = "sandbox-provider-secret"  # noqa: S105 -- public sandbox value


class SimulatorSettings(WeComAppSettings, LogSettings):
    """Environment of ``wecom-suite simulator`` (see docs/simulator.md)."""

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
    sim_callback_timeout_s: float = Field(5.0, gt=0, le=60)
    # Protocol doc §4: "总共重试三次" is ambiguous (3 attempts or 3 retries); we read it as
    # three retries after the first attempt. Open question, hence configurable.
    sim_callback_retries: int = Field(3, ge=0, le=10)
    # Retry spacing is undocumented (protocol doc §4); one second keeps tests and demos quick.
    sim_callback_retry_delay_s: float = Field(1.0, ge=0, le=60)

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

    @property
    def provider_secret(self) -> SecretStr | None:
        """The provider secret ``get_provider_token`` accepts (sandbox value in sandbox mode)."""
        if self.wecom_provider_secret is not None:
            return self.wecom_provider_secret
        return SecretStr(SANDBOX_PROVIDER_SECRET) if self.sandbox else None
