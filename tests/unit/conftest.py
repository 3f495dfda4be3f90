"""Fixtures of the listing checker's tests: the clean listing's image files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.listing import copy_images, write_images


@pytest.fixture(scope="module")
def image_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clean listing's files, encoded once per module (Pillow encoding is slow)."""
    folder = tmp_path_factory.mktemp("listing-images")
    write_images(folder)
    return folder


@pytest.fixture
def folder(tmp_path: Path, image_source: Path) -> Path:
    """A fresh copy of the clean listing's files for one test to use or break."""
    copy_images(image_source, tmp_path)
    return tmp_path
