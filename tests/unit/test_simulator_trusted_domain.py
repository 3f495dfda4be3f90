"""SIM_TRUSTED_DOMAIN: parsing, matching (§9.1: exact host and port) and the sandbox wiring."""

from __future__ import annotations

import pydantic
import pytest
from yarl import URL

from simulator.pages import trusted
from tests.support.simulator import quiet_settings
from wecom_suite.allinone import AllInOneSettings, sandbox_simulator_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIM_TRUSTED_DOMAIN", "PUBLIC_BASE_URL", "HTTP_HOST", "HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WECOM_SUITE_ID", raising=False)


@pytest.mark.parametrize(
    ("url", "domain", "expected"),
    [
        ("https://app.example.com/x", "app.example.com", True),
        ("https://app.example.com:443/x", "app.example.com", True),
        ("http://app.example.com/x", "app.example.com", True),
        ("https://app.example.com:444/x", "app.example.com", False),
        ("http://app.example.com/x", "app.example.com:443", False),
        ("http://[::1]:8080/x", "[::1]:8080", True),
        ("http://127.0.0.1:8080/x", "127.0.0.1", False),
    ],
)
def test_trusted_matches_host_and_port_exactly(url: str, domain: str, expected: bool) -> None:
    """A URL is trusted only on the exact host and port, default ports implied."""
    assert trusted(URL(url), domain) is expected


def test_the_setting_defaults_to_no_check_and_refuses_urls() -> None:
    """SIM_TRUSTED_DOMAIN is empty (no check) by default; a URL or path is refused."""
    assert quiet_settings().sim_trusted_domain == ""
    assert quiet_settings(sim_trusted_domain="app.example.com:8080").sim_trusted_domain
    for bad in ("https://app.example.com", "app.example.com/path", "a.com:port"):
        with pytest.raises(pydantic.ValidationError):
            quiet_settings(sim_trusted_domain=bad)


def test_sandbox_trusts_the_gateways_own_address() -> None:
    """Without PUBLIC_BASE_URL, OAuth comes back to this process's own address."""
    sim = sandbox_simulator_settings(AllInOneSettings(http_host="0.0.0.0", http_port=9090))  # noqa: S104
    assert sim.sim_trusted_domain == "127.0.0.1:9090"


def test_sandbox_trusts_the_public_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """In sandbox mode the simulator trusts the host of PUBLIC_BASE_URL."""
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://suite.example.com")
    sim = sandbox_simulator_settings(AllInOneSettings())
    assert sim.sim_trusted_domain == "suite.example.com"


def test_an_explicit_trusted_domain_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit SIM_TRUSTED_DOMAIN overrides the one derived from PUBLIC_BASE_URL."""
    monkeypatch.setenv("SIM_TRUSTED_DOMAIN", "elsewhere.example.com:81")
    sim = sandbox_simulator_settings(AllInOneSettings())
    assert sim.sim_trusted_domain == "elsewhere.example.com:81"
