"""One page renderer: every HTML page of the gateway is an autoescaped template file under
gateway/web/templates/, none is built in Python."""

from __future__ import annotations

from pathlib import Path

from gateway.web.pages import html_page, render

WEB = Path(__file__).resolve().parents[2] / "gateway" / "web"


def test_values_are_escaped_not_markup() -> None:
    """A value with markup in it is shown as text, in the body and in attributes."""
    text = render(
        "install.html",
        outcome='"><script>',
        zh=("<b>标题</b>", "说明"),
        en=("Title", "a&b"),
        refresh_s=None,
    )
    assert "<script>" not in text
    assert "<b>" not in text
    assert "&lt;b&gt;标题&lt;/b&gt;" in text
    assert "a&amp;b" in text


def test_html_page_is_uncached_html_with_its_status() -> None:
    """html_page answers text/html, no-store, with the status asked for."""
    page = html_page(
        "install.html", status=403, outcome="x", zh=("甲", "乙"), en=("A", "B"), refresh_s=3
    )
    assert page.status == 403
    assert page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.text is not None
    assert '<meta http-equiv="refresh" content="3">' in page.text


def test_no_page_is_built_in_python() -> None:
    """No module of gateway/web/ holds an HTML document: pages are the template files."""
    holders = [
        path.name
        for path in WEB.rglob("*.py")
        if "<!doctype html" in path.read_text(encoding="utf-8").lower()
    ]
    assert holders == []
    assert {path.name for path in (WEB / "templates").glob("*.html")} >= {
        "admin.html",
        "install.html",
        "oauth_error.html",
    }
