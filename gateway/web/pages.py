"""The one page renderer of the gateway: every HTML page (install, sign-in errors, business
settings, the QR code's refusals) is a template under ``gateway/web/templates/``."""

from __future__ import annotations

from typing import Any, Final

import jinja2
from aiohttp import web

NO_STORE: Final = {"Cache-Control": "no-store"}

# Autoescaped: every value is text, never markup. StrictUndefined: a value a template names
# but the caller forgot fails loudly instead of rendering as nothing. Each template's <style>
# block is static, so the CSP hash of it (shared.http) matches whatever the page says.
_PAGES: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render(template: str, /, **values: Any) -> str:
    """The HTML of ``template`` (a file name under ``templates/``) with ``values``."""
    return _PAGES.get_template(template).render(**values)


def html_page(template: str, /, *, status: int = 200, **values: Any) -> web.Response:
    """A ``text/html`` answer of ``template`` with ``values``, never cached."""
    return web.Response(
        text=render(template, **values),
        status=status,
        content_type="text/html",
        headers=NO_STORE,
    )
