"""Fixtures of the store-level contract suites."""

from __future__ import annotations

import pytest

from tests.support.store_backends import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """Unix time that moves only when the test says so."""
    return FakeClock()
