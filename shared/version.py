"""The installed package version, bound into every log line."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("wecom-suite")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
