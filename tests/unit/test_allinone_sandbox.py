"""Sandbox wiring of the all-in-one process: the bundled simulator points at the gateway."""

from __future__ import annotations

import pytest

from wecom_suite.allinone import AllInOneSettings, sandbox_simulator_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIM_COMMAND_URL", "SIM_DATA_URL", "SIM_INSTALL_REDIRECT_URL", "HTTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WECOM_SUITE_ID", raising=False)


def test_simulator_callbacks_default_to_the_gateways_own_urls() -> None:
    """Unset SIM_* URLs become this process's /wecom/command, /wecom/data, /install/complete."""
    sim = sandbox_simulator_settings(AllInOneSettings(http_host="0.0.0.0", http_port=9090))  # noqa: S104
    assert sim.sim_command_url == "http://127.0.0.1:9090/wecom/command"
    assert sim.sim_data_url == "http://127.0.0.1:9090/wecom/data"
    assert sim.sim_install_redirect_url == "http://127.0.0.1:9090/install/complete"
    assert sim.sandbox is True


def test_configured_simulator_urls_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit SIM_COMMAND_URL/SIM_INSTALL_REDIRECT_URL wins over the defaults."""
    monkeypatch.setenv("SIM_COMMAND_URL", "http://elsewhere/cmd")
    monkeypatch.setenv("SIM_INSTALL_REDIRECT_URL", "http://elsewhere/done")
    sim = sandbox_simulator_settings(AllInOneSettings())
    assert sim.sim_command_url == "http://elsewhere/cmd"
    assert sim.sim_install_redirect_url == "http://elsewhere/done"
    assert sim.sim_data_url == "http://127.0.0.1:8080/wecom/data"
