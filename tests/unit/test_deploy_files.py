"""docker-compose.yml, deploy/Dockerfile and deploy/.env.example against the code.

No container engine runs in CI, so nothing else would notice a compose service whose command
is not a real subcommand, a healthcheck on the wrong port, an example variable no service
reads, or a package the image forgets to copy.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from auth_service.settings import AuthServiceSettings
from gateway.settings import GatewaySettings
from notifier.settings import NotifierServiceSettings
from simulator.settings import SimulatorSettings
from token_service.settings import TokenServiceSettings
from wecom_suite.allinone import AllInOneSettings
from wecom_suite.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
PYPROJECT = ROOT / "pyproject.toml"

INFRASTRUCTURE = frozenset({"rabbitmq", "mongo"})
# The wecom-suite services of the production shape and the settings class each one reads.
SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "token-service": TokenServiceSettings,
    "auth-service": AuthServiceSettings,
    "notifier": NotifierServiceSettings,
}
# Services that keep state, so they need the shared store, not a per-container SQLite file.
STATEFUL = frozenset({"token-service", "auth-service", "notifier"})
SECRETS = frozenset(
    {
        "DATA_KEY",
        "INTERNAL_API_KEY",
        "WECOM_SUITE_SECRET",
        "WECOM_TOKEN",
        "WECOM_ENCODING_AES_KEY",
        "WECOM_PROVIDER_SECRET",
    }
)
_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
_HEALTH_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(\d+)/readyz")


def load_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def compose_services() -> dict[str, dict[str, Any]]:
    services = load_compose()["services"]
    assert isinstance(services, dict)
    return services


def subcommands() -> frozenset[str]:
    """The `wecom-suite` subcommands, from the real argument parser."""
    # argparse has no public way to list subcommands; its private attributes are stable.
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return frozenset(action.choices)
    raise AssertionError("wecom-suite has no subcommands")


def command_of(service: dict[str, Any]) -> list[str]:
    """The service's command as argv after the image's `wecom-suite` entrypoint."""
    command = service["command"]
    argv = command.split() if isinstance(command, str) else [str(part) for part in command]
    return argv[1:] if argv and argv[0] == "wecom-suite" else argv


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {str(key): str(value) for key, value in environment.items()}


def env_files_of(service: dict[str, Any]) -> list[str]:
    env_file = service.get("env_file") or []
    entries = [env_file] if isinstance(env_file, str | dict) else list(env_file)
    return [entry["path"] if isinstance(entry, dict) else str(entry) for entry in entries]


def settings_variables() -> frozenset[str]:
    classes: tuple[type[BaseSettings], ...] = (
        *SERVICE_SETTINGS.values(),
        SimulatorSettings,
        AllInOneSettings,
    )
    return frozenset(name.upper() for cls in classes for name in cls.model_fields)


def example_variables() -> dict[str, str]:
    """Every NAME=value line of .env.example, commented-out ones included."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def wecom_services() -> dict[str, dict[str, Any]]:
    return {
        name: service for name, service in compose_services().items() if name not in INFRASTRUCTURE
    }


def test_compose_runs_the_production_shape() -> None:
    """Broker, store and each service in its own container (design.md, production column)."""
    assert set(compose_services()) == INFRASTRUCTURE | set(SERVICE_SETTINGS)
    assert "rabbitmq" in compose_services()["rabbitmq"]["image"]
    assert compose_services()["mongo"]["image"].startswith("mongo")


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_service_command_is_a_wecom_suite_subcommand(name: str) -> None:
    """The image's entrypoint is `wecom-suite`; the command must be one of its subcommands,
    and the one named after the service."""
    argv = command_of(compose_services()[name])
    assert argv, f"{name} has no command"
    assert argv[0] in subcommands(), f"{name}: `wecom-suite {argv[0]}` does not exist"
    assert argv[0] == name


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_service_is_built_from_the_one_image(name: str) -> None:
    """Every service runs the same image, built from deploy/Dockerfile."""
    service = compose_services()[name]
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"
    assert service["build"]["context"] == "."
    images = {service.get("image") for service in wecom_services().values()}
    assert len(images) == 1


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_service_environment_names_the_bus_and_store(name: str) -> None:
    """A standalone service refuses to start without AMQP_URL; stateful ones share MongoDB."""
    environment = environment_of(compose_services()[name])
    assert environment.get("AMQP_URL", "").startswith("amqp://")
    if name in STATEFUL:
        assert environment.get("MONGO_URL", "").startswith("mongodb://")
    for variable in environment:
        assert variable in settings_variables(), f"{name}: {variable} is no setting"
    assert not SECRETS & set(environment), f"{name}: secrets belong in the env file"


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_service_reads_secrets_from_the_env_file(name: str) -> None:
    """DATA_KEY and INTERNAL_API_KEY come from the git-ignored deploy/.env."""
    files = env_files_of(compose_services()[name])
    assert files
    for path in files:
        assert Path(path).name == ".env"
        assert (ROOT / path).parent.joinpath(".env.example").is_file()


@pytest.mark.parametrize("name", sorted(SERVICE_SETTINGS))
def test_healthcheck_probes_readyz_on_the_service_port(name: str) -> None:
    """Each service serves /readyz on its own HTTP_PORT (the settings class's default)."""
    service = compose_services()[name]
    expected = SERVICE_SETTINGS[name].model_fields["http_port"].default
    environment = environment_of(service)
    assert int(environment.get("HTTP_PORT", expected)) == expected
    assert environment.get("HTTP_HOST") == "0.0.0.0"  # noqa: S104 -- a container must bind all
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(str(part) for part in test)
    ports = [int(port) for port in _HEALTH_URL.findall(text)]
    assert ports == [expected], f"{name}: healthcheck {text!r}"


@pytest.mark.parametrize("name", sorted(INFRASTRUCTURE | set(SERVICE_SETTINGS)))
def test_every_container_restarts_and_has_a_healthcheck(name: str) -> None:
    """A crashed service comes back; depends_on can wait for health."""
    service = compose_services()[name]
    assert service.get("restart") in {"always", "unless-stopped", "on-failure"}
    assert service.get("healthcheck", {}).get("test")


def test_wecom_services_wait_for_healthy_backends() -> None:
    """Nothing starts before the broker (and, for stateful services, the store) is healthy."""
    for name, service in wecom_services().items():
        needs = {"rabbitmq"} | ({"mongo"} if name in STATEFUL else set())
        depends = service.get("depends_on", {})
        for backend in needs:
            assert depends[backend]["condition"] == "service_healthy", (name, backend)


def test_only_the_gateway_is_published() -> None:
    """The gateway's 8080 is the deployment's one public port; the others scale freely."""
    for name, service in wecom_services().items():
        ports = [str(port) for port in service.get("ports", [])]
        if name == "gateway":
            assert any(port.endswith(":8080") for port in ports), ports
        else:
            assert not ports, f"{name} publishes {ports}: it could not be scaled"
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"


def test_env_example_names_only_real_settings() -> None:
    """Every variable in .env.example is read by some service."""
    unknown = sorted(set(example_variables()) - settings_variables())
    assert not unknown, f"deploy/.env.example names unknown variables: {unknown}"


def test_env_example_has_the_required_keys_as_placeholders() -> None:
    """The keys are asked for, but the example never carries a usable secret."""
    variables = example_variables()
    assert {"DATA_KEY", "INTERNAL_API_KEY", "WECOM_SUITE_ID"} <= set(variables)
    for name in SECRETS & set(variables):
        value = variables[name]
        assert value == "" or (value.startswith("<") and value.endswith(">")), name


def test_env_file_is_git_ignored() -> None:
    """deploy/.env holds the real secrets."""
    ignored = (ROOT / "deploy" / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored


def dockerfile_copies() -> set[str]:
    copies: set[str] = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"]:
            copies.update(part.strip("./").rstrip("/") for part in parts[1:-1])
    return copies


def test_dockerfile_copies_every_package() -> None:
    """pyproject's package list is what `pip install .` installs; a package left out of the
    image would fail only at import time in production."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in patterns}
    missing = sorted(packages - dockerfile_copies())
    assert not missing, f"deploy/Dockerfile does not copy {missing}"
    assert {"pyproject.toml", "README.md"} <= dockerfile_copies()


def test_dockerfile_carries_the_package_data() -> None:
    """Package data (the demo page) lives inside a copied package directory, and the image
    installs the project non-editably so setuptools includes it."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    package_data: dict[str, list[str]] = config["tool"]["setuptools"]["package-data"]
    copies = dockerfile_copies()
    for package, patterns in package_data.items():
        assert package in copies
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern} matches nothing"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(
        r"^RUN pip install --no-deps --no-build-isolation \.(\s|$)", text, re.MULTILINE
    )
    assert 'ENTRYPOINT ["wecom-suite"]' in text
