"""auth_service's settings: shared fragments plus the install limits and test corps."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from auth_service.domain import CountingPolicy, Limits, test_account
from shared.settings import BusSettings, HttpSettings, LogSettings, StoreSettings, WeComApiSettings


class AuthSettings(WeComApiSettings, StoreSettings):
    """What the install logic needs; the all-in-one process reuses it as it is."""

    # WeCom's own limits for an individual developer's app (protocol doc §13.3); lower values
    # cap a beta below them.
    install_limit_corps: int = Field(10, ge=0, le=10_000)
    install_limit_users: int = Field(100, ge=0, le=100_000)
    install_limit_test_accounts: int = Field(10, ge=0, le=10_000)
    # lifetime: every corp/user that ever installed counts (the safe reading of §13.3, which
    # never says an uninstall frees a slot); active: only current installs count.
    install_counting_policy: CountingPolicy = "lifetime"
    # Corp ids of the developer's own test enterprises (WeCom marks no install as a test).
    test_corp_ids: str = ""
    # corp:user pairs of the developer's own test accounts: their installs by create_auth
    # (the developer centre's test QR code) are test installs.
    test_accounts: str = ""
    # false: the app is offline (seed §4.2): new corps and members are refused, existing
    # installations keep working.
    installs_open: bool = True
    # v2 is WeCom's recommendation ("the old one can time out", §8.6).
    auth_permanent_code_api: Literal["v1", "v2"] = "v2"

    @field_validator("install_counting_policy", "auth_permanent_code_api", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def limits(self) -> Limits:
        return Limits(
            corps=self.install_limit_corps,
            users=self.install_limit_users,
            test_accounts=self.install_limit_test_accounts,
            policy=self.install_counting_policy,
            open=self.installs_open,
        )

    @field_validator("test_accounts")
    @classmethod
    def _pairs(cls, value: str) -> str:
        for part in filter(None, (item.strip() for item in value.split(","))):
            corp, _, user = part.partition(":")
            if not corp.strip() or not user.strip():
                raise ValueError(f"TEST_ACCOUNTS entries are corp:user pairs, not {part!r}")
        return value

    @property
    def test_corps(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.test_corp_ids.split(",") if part.strip())

    @property
    def test_account_pairs(self) -> frozenset[str]:
        """``TEST_ACCOUNTS`` as ``corp:user`` strings (see ``domain.test_account``)."""
        pairs = (part.partition(":") for part in self.test_accounts.split(",") if part.strip())
        return frozenset(test_account(corp.strip(), user.strip()) for corp, _, user in pairs)


class AuthServiceSettings(AuthSettings, HttpSettings, BusSettings, LogSettings):
    """Environment of ``wecom-suite auth-service`` (see docs/installs.md). ``HTTP_PORT`` serves
    only ``/healthz``, ``/readyz`` and ``/metrics`` here."""

    http_port: int = Field(8084, ge=0, le=65535)
