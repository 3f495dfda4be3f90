"""The secrets to redact are found in each settings model by type, never listed per service."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import AnyUrl, BaseModel, MongoDsn, SecretBytes, SecretStr

from auth_service.service import PROCESS as AUTH_PROCESS
from auth_service.settings import AuthServiceSettings
from gateway.service import PROCESS as GATEWAY_PROCESS
from gateway.settings import GatewaySettings
from notifier.service import PROCESS as NOTIFIER_PROCESS
from notifier.settings import NotifierServiceSettings
from shared.component import ServiceProcess
from shared.errors import ConfigurationError
from shared.logging import configure_service_logging
from shared.settings import secret_values
from simulator.settings import SimulatorSettings
from token_service.service import PROCESS as TOKEN_PROCESS
from token_service.settings import TokenServiceSettings
from wecom_suite.allinone import AllInOneSettings


class Inner(BaseModel):
    api_key: SecretStr
    label: str = "inner-label"


class Sample(BaseModel):
    secret: SecretStr
    maybe: SecretStr | None = None
    unset: SecretStr | None = None
    raw: SecretBytes
    inner: Inner
    optional_inner: Inner | None = None
    listed: list[Inner] = []
    broker: SecretStr
    callback_url: str
    plain_url: str = "https://example.test/path"
    any_url: AnyUrl
    mongo: MongoDsn
    name: str = "not-a-secret"

    @property
    def effective(self) -> SecretStr:
        return self.maybe or SecretStr("fallback-value")

    @property
    def title(self) -> str:
        return "not-a-secret-either"


def test_every_secret_field_nested_optional_and_url_password_is_found() -> None:
    """SecretStr/SecretBytes fields at any depth, secret properties and URL passwords, once."""
    sample = Sample(
        secret="top-secret-1",
        maybe="maybe-secret-2",
        raw=b"raw-bytes-secret",
        inner=Inner(api_key="inner-secret-3"),
        optional_inner=Inner(api_key="optional-secret-4"),
        listed=[Inner(api_key="listed-secret-5")],
        broker="amqp://user:p%40ss-word6@broker:5672/vhost",
        callback_url="https://hook:hook-pass-7@hooks.test/cb",
        any_url="https://svc:url-pass-8@svc.test/",
        mongo="mongodb://db:mongo-pass-9@h1:27017,h2:27017/app",
    )
    assert secret_values(sample) == [
        "top-secret-1",
        "maybe-secret-2",
        "raw-bytes-secret",
        "inner-secret-3",
        "optional-secret-4",
        "listed-secret-5",
        "amqp://user:p%40ss-word6@broker:5672/vhost",
        "p%40ss-word6",
        "p@ss-word6",
        "https://hook:hook-pass-7@hooks.test/cb",
        "hook-pass-7",
        "https://svc:url-pass-8@svc.test/",
        "url-pass-8",
        "mongodb://db:mongo-pass-9@h1:27017,h2:27017/app",
        "mongo-pass-9",
    ]


def test_a_secret_property_counts_when_its_field_is_unset() -> None:
    """A default filled in by a property (the sandbox's) is masked like a configured value."""
    sample = Sample(
        secret="top-secret-1",
        raw=b"raw-bytes-secret",
        inner=Inner(api_key="inner-secret-3"),
        broker="amqp://guest@broker/",
        callback_url="https://hooks.test/cb",
        any_url="https://svc.test/",
        mongo="mongodb://h1:27017/app",
    )
    assert secret_values(sample, None) == [
        "top-secret-1",
        "raw-bytes-secret",
        "inner-secret-3",
        "amqp://guest@broker/",
        "fallback-value",
    ]


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Logging as a service configures it; reset afterwards."""
    try:
        yield capsys
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def _log_lines_with(*texts: str) -> None:
    for text in texts:
        structlog.get_logger("test").warning("connect_failed", error=f"refused: {text}")
        logging.getLogger("aio_pika").warning("cannot reach %s", text)


SERVICE_SETTINGS = [
    GatewaySettings,
    TokenServiceSettings,
    AuthServiceSettings,
    NotifierServiceSettings,
    AllInOneSettings,
]


@pytest.mark.parametrize("settings_class", SERVICE_SETTINGS, ids=lambda cls: cls.__name__)
def test_amqp_and_mongo_passwords_are_redacted_for_every_service(
    settings_class: type[Any], json_logs: pytest.CaptureFixture[str]
) -> None:
    """A log line carrying AMQP_URL's or MONGO_URL's password (or the URL) is masked."""
    # One password per service: the redactor is process-wide, and an earlier case's
    # registration must not make this one pass.
    amqp_password = f"amqp-{settings_class.__name__}-pw"
    mongo_password = f"mongo-{settings_class.__name__}-pw"
    amqp_url = f"amqp://wecom:{amqp_password}@rabbit:5672/"
    mongo_url = f"mongodb://wecom:{mongo_password}@mongo:27017/"
    settings = settings_class(amqp_url=amqp_url, mongo_url=mongo_url, log_format="json")
    configure_service_logging(settings, "test")
    _log_lines_with(amqp_password, mongo_password, amqp_url, mongo_url)
    out = json_logs.readouterr().out
    assert len(out.strip().splitlines()) == 8
    for secret in (amqp_password, mongo_password):
        assert secret not in out
    assert json.loads(out.splitlines()[0])["error"] == "refused: [redacted]"


def test_the_simulators_configured_secrets_are_redacted(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    """The simulator's WeCom secrets are masked, found the same way as the services'."""
    settings = SimulatorSettings(wecom_provider_secret="sim-provider-secret", log_format="json")
    configure_service_logging(settings, "simulator")
    _log_lines_with("sim-provider-secret", "sandbox-suite-secret")
    out = json_logs.readouterr().out
    assert len(out.strip().splitlines()) == 4
    assert "sim-provider-secret" not in out
    assert "sandbox-suite-secret" not in out


@pytest.mark.parametrize(
    "process",
    [GATEWAY_PROCESS, TOKEN_PROCESS, AUTH_PROCESS, NOTIFIER_PROCESS],
    ids=lambda process: process.name,
)
async def test_a_standalone_process_masks_its_settings_secrets(
    process: ServiceProcess[Any], tmp_path: Path, json_logs: pytest.CaptureFixture[str]
) -> None:
    """Each service's own process wiring registers its secrets before anything can fail."""
    provider_secret = f"provider-{process.name}-secret"
    mongo_password = f"mongo-{process.name}-pass"
    settings = process.settings(
        amqp_url=None,
        wecom_provider_secret=provider_secret,
        mongo_url=f"mongodb://wecom:{mongo_password}@mongo:27017/",
        data_dir=tmp_path,
        log_format="json",
    )
    # Without AMQP_URL the process stops at start-up, just after configuring its logging.
    with pytest.raises(ConfigurationError):
        await process.run(settings)
    _log_lines_with(provider_secret, mongo_password)
    out = json_logs.readouterr().out
    assert len(out.strip().splitlines()) == 4
    assert provider_secret not in out
    assert mongo_password not in out
