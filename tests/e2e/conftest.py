"""Fixtures of the end-to-end suite: Debian's Chromium for the browser tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"a browser is required (REQUIRE_SERVICES=1) but unavailable: {reason}")
    pytest.skip(reason=f"{reason}; install Debian's chromium, or set REQUIRE_SERVICES=1 to fail")


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium, with playwright installed to drive it (nothing downloads a browser):
    skipped without them, a failure under ``REQUIRE_SERVICES=1``."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    try:
        import playwright.async_api  # noqa: F401, PLC0415 -- only to probe that it is installed
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    return CHROMIUM
