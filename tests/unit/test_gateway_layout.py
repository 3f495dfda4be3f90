"""The gateway's two rooms stay apart: the callback path imports nothing of the web side and
nothing that calls WeCom or RPC; the web side imports nothing of the callback path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"

# What the callback path must not reach: the web side, an HTTP client, WeCom, RPC.
CALLBACKS_FORBIDDEN = (
    "gateway.web",
    "aiohttp.client",
    "shared.wecom.api",
    "shared.auth_client",
    "shared.tokens",
)
WEB_FORBIDDEN = ("gateway.callbacks",)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by absolute name (``from a import b`` names ``a`` and
    ``a.b``: ``b`` may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def reaches(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The names that are, or lie under, one of ``forbidden`` (and aiohttp's client classes,
    importable from ``aiohttp`` itself)."""
    return sorted(
        name
        for name in names
        if (name.startswith("aiohttp.Client") and "aiohttp.client" in forbidden)
        or any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    )


def modules_of(package: str) -> list[Path]:
    """Every Python module of ``gateway/<package>``."""
    found = sorted((GATEWAY / package).rglob("*.py"))
    assert found, f"gateway/{package} has no modules"
    return found


@pytest.mark.parametrize("path", modules_of("callbacks"), ids=lambda p: p.name)
def test_callback_path_imports_no_web_wecom_or_rpc(path: Path) -> None:
    """No module of gateway/callbacks/ imports gateway.web, an HTTP client, WeCom or RPC."""
    assert reaches(imported_modules(path), CALLBACKS_FORBIDDEN) == []


@pytest.mark.parametrize("path", modules_of("web"), ids=lambda p: p.name)
def test_web_side_imports_no_callback_path(path: Path) -> None:
    """No module of gateway/web/ imports gateway.callbacks."""
    assert reaches(imported_modules(path), WEB_FORBIDDEN) == []


def test_the_checks_see_forbidden_imports(tmp_path: Path) -> None:
    """The import scan catches each form of import the rules forbid."""
    module = tmp_path / "m.py"
    module.write_text(
        "import aiohttp.client\n"
        "from gateway import web\n"
        "from shared.wecom.api import WeComClient\n"
        "from shared import tokens\n"
        "from aiohttp import ClientSession, web\n",
        encoding="utf-8",
    )
    assert reaches(imported_modules(module), CALLBACKS_FORBIDDEN) == [
        "aiohttp.ClientSession",
        "aiohttp.client",
        "gateway.web",
        "shared.tokens",
        "shared.wecom.api",
        "shared.wecom.api.WeComClient",
    ]
