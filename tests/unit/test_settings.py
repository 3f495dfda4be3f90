"""Settings: sandbox defaults, required secrets, and one clear line without values."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from shared.sandbox import SANDBOX_AES_KEY, SANDBOX_SUITE_ID
from shared.settings import describe_validation_error
from tests.support.process import wecom_suite_run_to_exit

GOOD_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def test_no_suite_id_means_sandbox_with_public_values() -> None:
    """Without credentials the gateway runs in sandbox mode on the documented values."""
    settings = GatewaySettings()
    assert settings.sandbox
    assert settings.suite_id == SANDBOX_SUITE_ID
    assert settings.encoding_aes_key.get_secret_value() == SANDBOX_AES_KEY


def test_suite_id_requires_every_secret() -> None:
    """With a real SuiteID nothing silently falls back to a sandbox secret."""
    with pytest.raises(ValidationError) as info:
        GatewaySettings(wecom_suite_id="ww123")
    line = describe_validation_error(info.value)
    assert "WECOM_SUITE_SECRET" in line
    assert "WECOM_TOKEN" in line
    assert "WECOM_ENCODING_AES_KEY" in line


def test_malformed_aes_key_is_named_without_its_value() -> None:
    """A bad EncodingAESKey is reported by name; the value never appears."""
    secret_value = "x" * 42
    with pytest.raises(ValidationError) as info:
        GatewaySettings(
            wecom_suite_id="ww123",
            wecom_suite_secret="s",
            wecom_token="tok",
            wecom_encoding_aes_key=secret_value,
        )
    line = describe_validation_error(info.value)
    assert line.startswith("WECOM_ENCODING_AES_KEY:")
    assert secret_value not in line
    assert secret_value not in str(info.value)


def test_complete_credentials_are_accepted() -> None:
    """A full set of credentials leaves sandbox mode."""
    settings = GatewaySettings(
        wecom_suite_id="ww123",
        wecom_suite_secret="s",
        wecom_token="QDG6eK",
        wecom_encoding_aes_key=GOOD_KEY,
    )
    assert not settings.sandbox
    assert settings.suite_id == "ww123"
    assert settings.provider_corpid is None


def test_bad_port_and_level_are_named() -> None:
    """Malformed plain settings are named too."""
    with pytest.raises(ValidationError) as info:
        GatewaySettings(http_port=70000, log_level="loud")
    line = describe_validation_error(info.value)
    assert "HTTP_PORT" in line
    assert "LOG_LEVEL" in line


def test_process_exits_with_one_line_naming_the_variable() -> None:
    """Start-up with a bad setting exits 2 with one stderr line and no traceback or value."""
    bad_value = "not-a-valid-key-but-secret-looking-0123456"
    env = {
        "PATH": "/usr/bin:/bin",
        "WECOM_SUITE_ID": "ww123",
        "WECOM_SUITE_SECRET": "secret-value-123",
        "WECOM_TOKEN": "tok",
        "WECOM_ENCODING_AES_KEY": bad_value,
        # What real credentials also require, well formed: the one bad setting is the key.
        "DATA_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",  # pragma: allowlist secret
        "INTERNAL_API_KEY": "internal-api-key-for-tests-0123",  # pragma: allowlist secret
    }
    result = wecom_suite_run_to_exit(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("configuration error: WECOM_ENCODING_AES_KEY")
    assert bad_value not in result.stderr
    assert "secret-value-123" not in result.stderr


def test_standalone_gateway_without_amqp_url_refuses_to_start() -> None:
    """The in-process bus exists only inside `wecom-suite run`; alone it needs AMQP_URL."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway"],
        env={"PATH": "/usr/bin:/bin", "LOG_FORMAT": "json", "WECOM_SANDBOX": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: AMQP_URL is required when a service runs as its own process "
        "(use `wecom-suite run` for the all-in-one process)"
    ]
