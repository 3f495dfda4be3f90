"""deploy/requirements.lock against pyproject.toml and deploy/Dockerfile.

The image installs exactly the locked files (pip's hash-checking mode), so a dependency added
to or narrowed in pyproject.toml without refreshing the lock would go unnoticed until a build
fails, or worse, ship a version the project no longer supports.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def locked() -> dict[str, tuple[Version, int]]:
    """Each locked package's canonical name, pinned version and how many hashes it carries."""
    found: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        pin = _PIN.match(line)
        if pin:
            current = canonicalize_name(pin.group(1))
            assert current not in found, f"{current} is pinned twice"
            found[current] = (Version(pin.group(2)), 0)
        if current is not None:
            version, hashes = found[current]
            found[current] = (version, hashes + len(_HASH.findall(line)))
        if not line.rstrip().endswith("\\"):
            current = None
    return found


def pyproject() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def runtime_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(text) for text in project["dependencies"]]


def build_requirements() -> list[Requirement]:
    build = pyproject()["build-system"]
    assert isinstance(build, dict)
    return [Requirement(text) for text in build["requires"]]


def test_every_runtime_dependency_is_locked_at_a_version_pyproject_allows() -> None:
    """Each dependency of [project] is pinned in the lock, inside pyproject's range."""
    pins = locked()
    for requirement in runtime_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in deploy/requirements.lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside pyproject's {requirement.specifier}"
        )


def test_the_build_backend_is_locked_too() -> None:
    """setuptools is pinned, so the image builds the project without fetching anything."""
    pins = locked()
    for requirement in build_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"build requirement {requirement.name} is not locked"
        assert requirement.specifier.contains(pins[name][0], prereleases=True)


def test_every_locked_package_has_hashes() -> None:
    """pip's --require-hashes refuses a pin without a hash; the lock carries one per file."""
    pins = locked()
    assert len(pins) > len(runtime_requirements())  # the transitive dependencies are there
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"pinned without a hash: {unhashed}"


def test_the_lock_holds_no_development_tool() -> None:
    """The image carries the runtime only: no test runner, linter or type checker."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    dev = {
        canonicalize_name(Requirement(text).name)
        for text in project["optional-dependencies"]["dev"]
    }
    runtime = {canonicalize_name(requirement.name) for requirement in runtime_requirements()}
    leaked = sorted((dev - runtime) & set(locked()))
    assert not leaked, f"development tools in the image's lock: {leaked}"


def test_the_dockerfile_installs_the_lock_with_hashes_then_the_project_alone() -> None:
    """The image's dependencies come only from the lock; the project adds none of its own."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lock_install = re.search(
        r"^RUN pip install --require-hashes -r deploy/requirements\.lock\s*$", text, re.MULTILINE
    )
    project_install = re.search(
        r"^RUN pip install --no-deps --no-build-isolation \.(\s|$)", text, re.MULTILINE
    )
    assert lock_install, "deploy/Dockerfile does not install the lock in hash-checking mode"
    assert project_install, "deploy/Dockerfile installs the project with its dependencies"
    assert lock_install.start() < project_install.start()
    assert re.search(r"^COPY deploy/requirements\.lock ", text, re.MULTILINE)
