"""A clean listing and its images, generated with Pillow (no binary files in the repository)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

SIZES = {"logo": (750, 750), "mobile": (1242, 2208), "desktop": (1080, 832)}


def clean_listing() -> dict[str, Any]:
    """A listing that breaks no rule (with the images of :func:`write_images`)."""
    return {
        "name": "会议助手",
        "slogan": "高效安排会议",
        "introduction": "一句话说明应用的功能和使用场景。",
        "category": "办公",
        "logo": "images/logo.png",
        "screenshots": {
            "mobile": [f"images/m{index}.png" for index in range(1, 6)],
            "desktop": ["images/d1.png"],
        },
        "privacy_policy": "privacy.pdf",
        "home_url": "https://app.example.com/",
        "trusted_domain": "app.example.com",
        "install_callback_domain": "app.example.com",
        "business_settings_url": "https://app.example.com/admin",
        "data_callback_url": "https://app.example.com/wecom/data",
        "command_callback_url": "https://app.example.com/wecom/command",
        "menus": ["首页", "我的"],
        "ip_allowlist": ["119.29.29.29"],
    }


def save_image(path: Path, size: tuple[int, int], image_format: str = "PNG") -> None:
    """A plain image of ``size`` in ``image_format``, whatever the extension of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (40, 120, 200)).save(path, format=image_format)


def write_images(folder: Path) -> None:
    """The logo, five phone and one desktop screenshot, and the privacy policy."""
    save_image(folder / "images" / "logo.png", SIZES["logo"])
    for index in range(1, 6):
        save_image(folder / "images" / f"m{index}.png", SIZES["mobile"])
    save_image(folder / "images" / "d1.png", SIZES["desktop"])
    (folder / "privacy.pdf").write_bytes(b"%PDF-1.4\n%privacy policy\n")


def copy_images(source: Path, folder: Path) -> None:
    """Copy the generated files of :func:`write_images` (faster than encoding them again)."""
    shutil.copytree(source, folder, dirs_exist_ok=True)


def write_listing(folder: Path, listing: dict[str, Any], name: str = "listing.yaml") -> Path:
    """Write ``listing`` as YAML (or JSON for a ``.json`` name) and return its path."""
    path = folder / name
    if path.suffix == ".json":
        path.write_text(json.dumps(listing, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(listing, allow_unicode=True), encoding="utf-8")
    return path
