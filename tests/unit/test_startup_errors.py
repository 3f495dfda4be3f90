"""Start-up errors: every bad setting at once, one line each, and a port in use, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from aiohttp import web
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from notifier.settings import NotifierServiceSettings
from shared.errors import ConfigurationError
from shared.http import HttpServer
from shared.settings import (
    PRODUCTION_REQUIRED,
    masked_url,
    missing_for_production,
    validation_problems,
)
from tests.support.process import wecom_suite_run_to_exit
from wecom_suite.allinone import AllInOneSettings

# Values a log or an error line must never show (test data, not real credentials).
BAD_DATA_KEY = "bm90LTMyLWJ5dGVzLWxvbmc="
BAD_API_KEY = "tooShortKey1"
BAD_AMQP_URL = "rabbit://guest:amqp-pw-123456@127.0.0.1/"
BAD_MONGO_URL = "http://admin:mongo-pw-123456@db/"


def _env(**overrides: str) -> dict[str, str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "AMQP_", "MONGO_", "DATA_", "INTERNAL_", "SIM_", "HTTP_"))
    }
    base.update({"LOG_FORMAT": "json"})
    base.update(overrides)
    return base


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port some other program already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_every_bad_setting_is_reported_in_one_run(tmp_path: os.PathLike[str]) -> None:
    """Five bad settings: one run, one line each naming the variable, exit 2, no value shown."""
    result = wecom_suite_run_to_exit(
        _env(
            DATA_DIR=str(tmp_path),
            DATA_KEY=BAD_DATA_KEY,
            INTERNAL_API_KEY=BAD_API_KEY,
            AMQP_URL=BAD_AMQP_URL,
            MONGO_URL=BAD_MONGO_URL,
            HTTP_PORT="70000",
        )
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    named = sorted(line.removeprefix("configuration error: ").split(":")[0] for line in lines)
    assert named == ["AMQP_URL", "DATA_KEY", "HTTP_PORT", "INTERNAL_API_KEY", "MONGO_URL"]
    assert all(line.startswith("configuration error: ") for line in lines)
    for value in (BAD_DATA_KEY, BAD_API_KEY, "amqp-pw-123456", "mongo-pw-123456"):
        assert value not in result.stderr
    # Nothing started: no banner, no log line at all.
    assert result.stdout == ""


def test_what_real_credentials_require_is_reported_with_the_bad_settings(
    tmp_path: os.PathLike[str],
) -> None:
    """With a suite id, a missing DATA_KEY and INTERNAL_API_KEY are named in the same run as a
    malformed setting, one line each, instead of one restart at a time."""
    result = wecom_suite_run_to_exit(
        _env(
            DATA_DIR=str(tmp_path),
            WECOM_SUITE_ID="ww-real-suite",
            WECOM_SUITE_SECRET="a-real-suite-secret",  # pragma: allowlist secret
            WECOM_TOKEN="QDG6eK",  # pragma: allowlist secret
            WECOM_ENCODING_AES_KEY="a" * 43,
            AMQP_URL=BAD_AMQP_URL,
        )
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    named = sorted(line.removeprefix("configuration error: ").split(" ")[0] for line in lines)
    assert named == ["AMQP_URL:", "DATA_KEY", "INTERNAL_API_KEY"]
    assert result.stdout == ""


def test_sandbox_mode_requires_neither_key() -> None:
    """Without a suite id nothing more is required: the sandbox generates its own keys."""
    assert missing_for_production(AllInOneSettings, {"DATA_DIR": "/x"}) == []
    assert missing_for_production(AllInOneSettings, {"WECOM_SUITE_ID": "ww1"}) == [
        PRODUCTION_REQUIRED["DATA_KEY"],
        PRODUCTION_REQUIRED["INTERNAL_API_KEY"],
    ]
    assert missing_for_production(NotifierServiceSettings, {"WECOM_SUITE_ID": "ww1"}) == []


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("amqp_url", "rabbit://x", "must start with amqp:// or amqps://"),
        ("amqp_url", "amqp://", "must name a host after amqp://"),
        ("mongo_url", "postgres://db/x", "must start with mongodb:// or mongodb+srv://"),
        ("data_key", "a2V5", "must be base64 of exactly 32 bytes"),
        ("data_key", "not base64 at all!", "must be base64 of exactly 32 bytes"),
        ("internal_api_key", "short", "must be at least 16 characters"),
    ],
)
def test_malformed_formats_are_settings_errors(field: str, value: str, problem: str) -> None:
    """Each format is checked by the settings model, so pydantic reports it with the rest."""
    with pytest.raises(ValidationError) as info:
        GatewaySettings.model_validate({field: value})
    assert validation_problems(info.value) == [f"{field.upper()}: {problem}"]


def test_well_formed_values_are_accepted() -> None:
    """The documented shapes pass, surrounding blanks dropped."""
    settings = GatewaySettings(
        amqp_url="amqps://u:p@broker:5671/vh",
        mongo_url="mongodb+srv://u:p@cluster.example/db",
        data_key=" " + "A" * 43 + "= ",
        internal_api_key="  a-long-enough-internal-key  ",
    )
    assert settings.amqp_url is not None
    assert settings.mongo_url is not None
    assert settings.data_key is not None
    assert settings.data_key.get_secret_value() == "A" * 43 + "="
    assert settings.internal_api_key is not None
    assert settings.internal_api_key.get_secret_value() == "a-long-enough-internal-key"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest-pw@127.0.0.1:5672/vh", "amqp://guest:***@127.0.0.1:5672/vh"),
        ("mongodb://u:p%40w@h1:1,h2:2/db?x=1", "mongodb://u:***@h1:1,h2:2/db?x=1"),
        ("amqp://127.0.0.1/", "amqp://127.0.0.1/"),
        ("not a url", "***"),
    ],
)
def test_masked_url_hides_only_the_password(url: str, shown: str) -> None:
    """A log line names the server and the user, never the password."""
    assert masked_url(url) == shown


async def test_port_in_use_is_a_configuration_error_naming_the_variable(listening: int) -> None:
    """Binding a taken port raises one clear error naming the setting, not an OSError."""
    server = HttpServer(web.Application(), "127.0.0.1", listening, port_setting="SIM_HTTP_PORT")
    with pytest.raises(ConfigurationError) as info:
        await server.start()
    assert info.value.message.startswith(f"SIM_HTTP_PORT: cannot listen on 127.0.0.1:{listening}")
    assert "already in use" in info.value.message
    await server.stop()


@pytest.mark.parametrize("variable", ["HTTP_PORT", "SIM_HTTP_PORT"])
def test_run_with_a_port_in_use_exits_with_one_line(
    variable: str, listening: int, tmp_path: os.PathLike[str]
) -> None:
    """`wecom-suite run` on a taken gateway or simulator port: one line, exit 2, no banner."""
    env = _env(DATA_DIR=str(tmp_path), HTTP_PORT="0", SIM_HTTP_PORT="0")
    env[variable] = str(listening)
    result = wecom_suite_run_to_exit(env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"configuration error: {variable}: cannot listen on 127.0.0.1:{listening} "
        "(the port is already in use; stop what uses it or choose another port)"
    ]
    assert '"event": "sandbox_mode"' not in result.stdout
    assert "Traceback" not in result.stdout


def test_standalone_simulator_with_its_port_in_use_exits_with_one_line(listening: int) -> None:
    """`python -m simulator` on a taken SIM_HTTP_PORT: the same one line, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "simulator"],
        env=_env(WECOM_SANDBOX="1", SIM_HTTP_PORT=str(listening)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("configuration error: SIM_HTTP_PORT: cannot listen on ")
