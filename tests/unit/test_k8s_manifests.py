"""deploy/k8s against the Kubernetes API schemas and the services' settings.

No cluster runs in CI, so nothing else would notice a manifest the API server would refuse, an
environment variable no service reads, a probe on the wrong port, or a Deployment without a
disruption budget. The schemas are the ones kubernetes-validate bundles: no network.
"""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from tests.unit.test_deploy_files import SECRETS, SERVICE_SETTINGS, settings_variables, subcommands

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SECRET_EXAMPLE = "secret.example.yaml"
# The oldest Kubernetes release still common in managed clusters, and the newest bundled.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# Variables that hold a password or key: only ever from the Secret, never a plain value.
SECRET_VARIABLES = SECRETS | {"AMQP_URL", "MONGO_URL"}
AUTOSCALED = frozenset({"gateway", "notifier"})
# Valid stand-ins for the Secret's placeholders, to load the manifests' values into the
# settings classes (none is a real credential).
STAND_INS = {
    "AMQP_URL": "amqp://wecom:stand-in@rabbitmq:5672/wecom",
    "MONGO_URL": "mongodb://wecom:stand-in@mongodb:27017/?replicaSet=rs0",
    "WECOM_SUITE_SECRET": "stand-in-suite-secret",
    "WECOM_TOKEN": "StandInToken",
    "WECOM_ENCODING_AES_KEY": "a" * 43,
    "WECOM_PROVIDER_SECRET": "stand-in-provider-secret",
    "DATA_KEY": base64.b64encode(bytes(32)).decode(),
    "INTERNAL_API_KEY": "stand-in-internal-api-key",
}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$")
_UNITS = {None: 1.0, "m": 0.001, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30}


def load(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), name
    return loaded


def manifest_files() -> list[str]:
    return sorted(path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    """The manifests of one kind, by metadata.name."""
    found = {}
    for name in manifest_files():
        document = load(name)
        if document["kind"] == kind:
            found[document["metadata"]["name"]] = document
    return found


def deployment(service: str) -> dict[str, Any]:
    return of_kind("Deployment")[service]


def container(service: str) -> dict[str, Any]:
    containers = deployment(service)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    assert isinstance(containers[0], dict)
    return containers[0]


def config_data() -> dict[str, str]:
    data = of_kind("ConfigMap")["wecom-suite"]["data"]
    assert all(isinstance(value, str) for value in data.values()), "ConfigMap values are text"
    return dict(data)


def secret_data() -> dict[str, str]:
    return dict(load(SECRET_EXAMPLE)["stringData"])


def quantity(text: str | int) -> float:
    match = _QUANTITY.match(str(text))
    assert match, f"unexpected quantity {text!r}"
    return float(match.group(1)) * _UNITS[match.group(2)]


def pod_labels(service: str) -> dict[str, str]:
    labels = deployment(service)["spec"]["template"]["metadata"]["labels"]
    assert isinstance(labels, dict)
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are expected"
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


def test_the_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    """`kubectl apply -k` applies all of deploy/k8s, and never the placeholder Secret."""
    kustomization = load("kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert sorted(resources) == [name for name in manifest_files() if name != SECRET_EXAMPLE]
    assert len(set(resources)) == len(resources)
    assert kustomization["namespace"] == of_kind("Namespace").popitem()[0]


def test_the_image_tag_is_the_release() -> None:
    """The kustomization deploys the image of pyproject's version, the one the Deployments name."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    (image,) = load("kustomization.yaml")["images"]
    assert image["newTag"] == version
    assert {container(service)["image"] for service in SERVICE_SETTINGS} == {image["name"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", manifest_files())
def test_manifest_is_a_valid_kubernetes_object(name: str, version: str) -> None:
    """The API server's schema (strict: no unknown field) accepts every manifest."""
    try:
        kubernetes_validate.validate(load(name), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name} is invalid for Kubernetes {version}: {exc}")


def test_every_service_has_its_deployment() -> None:
    """One Deployment per service of the production shape, and no other."""
    assert set(of_kind("Deployment")) == set(SERVICE_SETTINGS)


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_deployment_runs_its_service_subcommand(service: str) -> None:
    """The image's entrypoint is `wecom-suite`: args name the service's own subcommand."""
    args = container(service)["args"]
    assert args[0] in subcommands(), f"`wecom-suite {args[0]}` does not exist"
    assert args == [service]
    assert "command" not in container(service), "command would replace the entrypoint"
    assert selects(deployment(service)["spec"]["selector"], pod_labels(service))


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_deployment_environment_names_only_its_settings(service: str) -> None:
    """Each variable a Deployment sets is a setting of that service; secrets come only from
    the Secret, by keys the example Secret has."""
    fields = {name.upper() for name in SERVICE_SETTINGS[service].model_fields}
    for variable in container(service)["env"]:
        name = variable["name"]
        assert name in fields, f"{service}: {name} is no setting of this service"
        if name in SECRET_VARIABLES:
            assert "value" not in variable, f"{service}: {name} in clear"
            reference = variable["valueFrom"]["secretKeyRef"]
            assert reference["name"] == "wecom-suite"
            if not reference.get("optional", False):
                assert reference["key"] in secret_data(), f"{service}: {reference['key']}"
    sources = container(service)["envFrom"]
    assert sources == [{"configMapRef": {"name": "wecom-suite"}}]


def test_configmap_and_secret_name_only_real_settings() -> None:
    """The shared ConfigMap and the example Secret name real settings; no secret sits in the
    ConfigMap, and the example carries placeholders only."""
    known = settings_variables()
    config = config_data()
    assert not sorted(set(config) - known)
    assert not SECRET_VARIABLES & set(config), "secrets belong in the Secret"
    secrets = secret_data()
    assert not sorted(set(secrets) - known)
    assert set(secrets) <= SECRET_VARIABLES
    for name, value in secrets.items():
        assert re.search(r"<[^>]+>", value), f"{name}: not a placeholder"


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_the_manifests_values_load_into_the_services_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap, the Deployment's own values and the Secret's keys (valid stand-ins for
    its placeholders) are accepted by the service's settings class: real mode, its port."""
    cls: type[BaseSettings] = SERVICE_SETTINGS[service]
    for name in settings_variables():
        monkeypatch.delenv(name, raising=False)
    environment = dict(config_data())
    for variable in container(service)["env"]:
        environment[variable["name"]] = variable.get("value") or STAND_INS[variable["name"]]
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = cls()
    assert getattr(settings, "sandbox") is False  # noqa: B009 -- every class has it
    assert getattr(settings, "http_port") == container(service)["ports"][0]["containerPort"]  # noqa: B009
    assert str(getattr(settings, "data_dir")) == "/data"  # noqa: B009


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_probes_use_healthz_and_readyz_on_the_service_port(service: str) -> None:
    """Liveness and start-up on /healthz, readiness on /readyz, on the port HTTP_PORT sets,
    which is the settings class's default (the compose file's, too)."""
    spec = container(service)
    expected = SERVICE_SETTINGS[service].model_fields["http_port"].default
    env = {variable["name"]: variable.get("value") for variable in spec["env"]}
    assert env["HTTP_PORT"] == str(expected)
    assert spec["ports"] == [{"name": "http", "containerPort": expected, "protocol": "TCP"}]
    assert config_data()["HTTP_HOST"] == "0.0.0.0"  # noqa: S104 -- a pod must bind all
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert spec[probe]["httpGet"] == {"path": path, "port": "http"}, (service, probe)


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_pods_run_unprivileged_on_a_read_only_root(service: str) -> None:
    """Non-root (the image's user), no privilege escalation, no capability, read-only root
    filesystem, the runtime's seccomp profile and no service-account token."""
    pod = deployment(service)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container(service)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_data_dir_and_tmp_are_writable_volumes(service: str) -> None:
    """With a read-only root, DATA_DIR and /tmp must be mounted volumes."""
    pod = deployment(service)["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container(service)["volumeMounts"]}
    for path in (config_data()["DATA_DIR"], "/tmp"):  # noqa: S108 -- the mount point itself
        assert path in mounts, f"{service}: nothing writable at {path}"
        assert not mounts[path].get("readOnly", False)
        assert "emptyDir" in volumes[mounts[path]["name"]]


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_resources_have_requests_and_limits(service: str) -> None:
    """CPU and memory requests and limits, limits above requests; memory at least twice the
    ~75 MiB each service was measured at (deploy/k8s comments)."""
    resources = container(service)["resources"]
    for kind in ("cpu", "memory"):
        assert quantity(resources["limits"][kind]) >= quantity(resources["requests"][kind])
    assert quantity(resources["requests"]["memory"]) >= 96 * 2**20
    assert quantity(resources["limits"]["memory"]) >= 150 * 2**20
    assert "VmHWM" in (K8S / f"{service}-deployment.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("service", sorted(SERVICE_SETTINGS))
def test_every_deployment_has_a_disruption_budget(service: str) -> None:
    """A drain never takes a service's last replica away."""
    budgets = [
        budget
        for budget in of_kind("PodDisruptionBudget").values()
        if selects(budget["spec"]["selector"], pod_labels(service))
    ]
    assert len(budgets) == 1, f"{service}: {len(budgets)} budgets"
    assert budgets[0]["spec"]["minAvailable"] >= 1


def test_the_gateway_and_the_notifier_autoscale() -> None:
    """HPAs scale the gateway and the notifier from two replicas; their Deployments leave
    `replicas` to the HPA, the others keep two for availability."""
    autoscalers = of_kind("HorizontalPodAutoscaler")
    targets = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in autoscalers.values()}
    assert set(targets) == AUTOSCALED
    for service, hpa in targets.items():
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployment(service)["spec"]
    for service in set(SERVICE_SETTINGS) - AUTOSCALED:
        assert deployment(service)["spec"]["replicas"] >= 2


def test_the_gateway_service_reaches_the_gateway_pods() -> None:
    """The Service selects the gateway's pods (only them) on their named HTTP port."""
    (service,) = of_kind("Service").values()
    selector = {"matchLabels": service["spec"]["selector"]}
    assert selects(selector, pod_labels("gateway"))
    for other in set(SERVICE_SETTINGS) - {"gateway"}:
        assert not selects(selector, pod_labels(other))
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def ingress_paths() -> list[tuple[str, str, dict[str, Any]]]:
    (ingress,) = of_kind("Ingress").values()
    return [
        (path["path"], path["pathType"], path["backend"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def published(url_path: str) -> bool:
    """Whether an Ingress path (Prefix: whole path segments) matches ``url_path``."""
    for path, path_type, _ in ingress_paths():
        if path_type == "Exact" and url_path == path:
            return True
        prefix = path.rstrip("/")
        if path_type == "Prefix" and (url_path == prefix or url_path.startswith(prefix + "/")):
            return True
    return False


def test_the_ingress_publishes_the_public_routes_only() -> None:
    """WeCom's callbacks and the pages people open are public over TLS; the internal API,
    /metrics and the probes are not."""
    (ingress,) = of_kind("Ingress").values()
    hosts = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= hosts
    assert config_data()["PUBLIC_BASE_URL"] in {f"https://{host}" for host in hosts}
    (service,) = of_kind("Service")
    for _, _, backend in ingress_paths():
        assert backend == {"service": {"name": service, "port": {"name": "http"}}}
    for public in ("/wecom/command", "/wecom/data", "/install", "/oauth/callback", "/jssdk/config"):
        assert published(public), f"{public} is not published"
    for internal in ("/api/v1/notifications", "/metrics", "/healthz", "/readyz"):
        assert not published(internal), f"{internal} must stay inside the cluster"
