"""docs/configuration.md (and docs/simulator.md for ``SIM_*``) against the settings classes.

Every settings field is an environment variable (its name upper-cased). An operator reads the
docs, not the classes, so a field without a documented row is a setting nobody can find, and
a documented name no class has is a setting that does nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from auth_service.settings import AuthServiceSettings
from gateway.settings import GatewaySettings
from notifier.settings import NotifierServiceSettings
from simulator.settings import SimulatorSettings
from token_service.settings import TokenServiceSettings
from wecom_suite.allinone import AllInOneSettings

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIGURATION = DOCS / "configuration.md"
SIMULATOR = DOCS / "simulator.md"

SETTINGS_CLASSES: tuple[type[BaseSettings], ...] = (
    GatewaySettings,
    TokenServiceSettings,
    AuthServiceSettings,
    NotifierServiceSettings,
    SimulatorSettings,
    AllInOneSettings,
)

# Documented in configuration.md but read outside any settings class, on purpose:
NOT_SETTINGS = frozenset(
    {
        # The listing checker's report language follows the POSIX locale (listing/report.py):
        # a user's locale, not a deployment setting.
        "LC_ALL",
        "LC_MESSAGES",
        "LANG",
        # Read by the test suite only (tests/conftest.py), never by a service.
        "REQUIRE_SERVICES",
    }
)

SIM_PREFIX = "SIM_"
# A backticked upper-case name: `AMQP_URL`, `LANG` (not `WECOM_*` or `DATA_DIR/data.key`).
_BACKTICKED = re.compile(r"`([A-Z][A-Z0-9_]*[A-Z0-9])`")
_SIM_NAME = re.compile(r"\bSIM_[A-Z0-9_]*[A-Z0-9]\b")


def settings_variables() -> frozenset[str]:
    """Every environment variable any service reads through its settings."""
    return frozenset(name.upper() for cls in SETTINGS_CLASSES for name in cls.model_fields)


def table_row_names(text: str) -> frozenset[str]:
    """Backticked names in the first cell of each Markdown table row."""
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = line.split("|")
        if len(cells) > 2:
            names.update(_BACKTICKED.findall(cells[1]))
    return frozenset(names)


def test_every_setting_has_a_row_in_its_doc() -> None:
    """A field added to a settings class must be documented: SIM_* in simulator.md, the rest
    in configuration.md."""
    variables = settings_variables()
    configuration_rows = table_row_names(CONFIGURATION.read_text(encoding="utf-8"))
    simulator_rows = table_row_names(SIMULATOR.read_text(encoding="utf-8"))
    missing = sorted(
        name
        for name in variables
        if name not in (simulator_rows if name.startswith(SIM_PREFIX) else configuration_rows)
    )
    assert not missing, f"settings without a documented row: {missing}"


def test_configuration_doc_names_only_real_settings() -> None:
    """A name in configuration.md that no settings class reads would be a setting that does
    nothing (a typo, or a variable that was renamed)."""
    variables = settings_variables() | NOT_SETTINGS
    named = set(_BACKTICKED.findall(CONFIGURATION.read_text(encoding="utf-8")))
    unknown = sorted(named - variables)
    assert not unknown, f"configuration.md names variables no settings class has: {unknown}"


def test_simulator_doc_names_only_real_sim_settings() -> None:
    """Every SIM_* name in simulator.md is a field of SimulatorSettings."""
    sim_fields = {name.upper() for name in SimulatorSettings.model_fields}
    named = set(_SIM_NAME.findall(SIMULATOR.read_text(encoding="utf-8")))
    unknown = sorted(named - sim_fields)
    assert not unknown, f"simulator.md names SIM_* variables SimulatorSettings lacks: {unknown}"


def test_configuration_doc_keeps_simulator_settings_in_simulator_doc() -> None:
    """configuration.md links to simulator.md for SIM_* rather than keeping a second table that
    could drift."""
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert "simulator.md" in text
    assert not {name for name in table_row_names(text) if name.startswith(SIM_PREFIX)}


def test_not_settings_stay_not_settings() -> None:
    """If one of the exceptions becomes a real field, it belongs in a settings table instead."""
    assert not NOT_SETTINGS & settings_variables()


@pytest.mark.parametrize(
    "doc", ["tokens.md", "installs.md", "notifier.md", "oauth.md", "simulator.md"]
)
def test_configuration_doc_links_the_service_docs(doc: str) -> None:
    """The per-service pages carry the details behind each table."""
    assert f"]({doc}" in CONFIGURATION.read_text(encoding="utf-8")
