"""build_gateway_app serves the callback routes always and each web part only when it is
given: explicit parts, no feature flags."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiohttp import web

from gateway.app import DemoPage, InternalApiRoutes, MemberPages, WebPart, build_gateway_app
from gateway.settings import GatewaySettings
from shared.bus.inprocess import InProcessBus
from tests.support.gateway import capture_topology

CALLBACKS = {"/wecom/command", "/wecom/data", "/healthz", "/readyz", "/metrics"}
MEMBER = {"/oauth/login", "/oauth/callback", "/install", "/jssdk/config"}
DEMO = {"/demo/", "/demo"}
INTERNAL = {"/api/v1/notifications"}


def served_paths(parts: Sequence[WebPart]) -> set[str]:
    """The paths of every route of a gateway built with ``parts``."""
    app: web.Application = build_gateway_app(
        GatewaySettings(), InProcessBus(capture_topology()), web_parts=parts
    )
    return {
        info.get("path") or info.get("formatter", "")
        for info in (resource.get_info() for resource in app.router.resources())
    }


@pytest.mark.parametrize(
    ("parts", "present", "absent"),
    [
        ([], CALLBACKS, MEMBER | DEMO | INTERNAL),
        ([MemberPages(bytes(32))], CALLBACKS | MEMBER, DEMO | INTERNAL),
        ([DemoPage()], CALLBACKS | DEMO, MEMBER | INTERNAL),
        ([InternalApiRoutes("k" * 32)], CALLBACKS | INTERNAL, MEMBER | DEMO),
        (
            [MemberPages(bytes(32)), DemoPage(), InternalApiRoutes("k" * 32)],
            CALLBACKS | MEMBER | DEMO | INTERNAL,
            set(),
        ),
    ],
)
def test_each_web_part_adds_its_routes_only(
    parts: list[WebPart], present: set[str], absent: set[str]
) -> None:
    """The callback routes are always served; a web part's routes only when it is given."""
    paths = served_paths(parts)
    assert present <= paths
    assert not absent & paths
