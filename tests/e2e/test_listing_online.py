"""``listing check --online`` against a real ``wecom-suite run`` in sandbox mode."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from aiohttp import web

from gateway.app import build_gateway_app
from gateway.settings import GatewaySettings
from shared.bus.inprocess import InProcessBus
from shared.bus.topology import BASE_TOPOLOGY
from shared.sandbox import SANDBOX_AES_KEY, SANDBOX_TOKEN
from tests.support.listing import clean_listing, write_images, write_listing
from tests.support.process import wecom_suite_run
from wecom_suite.cli import main
from wecom_suite.listing.online import verify_callback_urls


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 -- loopback
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def gateway_base() -> Iterator[str]:
    """A ``wecom-suite run`` process in sandbox mode on a free port."""
    with wecom_suite_run(log_level="warning") as (_, base):
        yield base


@pytest.fixture
def listing_path(tmp_path: Path, gateway_base: str) -> Path:
    """A clean listing whose callback URLs point at the sandbox gateway."""
    write_images(tmp_path)
    listing = clean_listing()
    listing["data_callback_url"] = f"{gateway_base}/wecom/data"
    listing["command_callback_url"] = f"{gateway_base}/wecom/command"
    return write_listing(tmp_path, listing)


def _check_online(path: Path, *extra: str) -> int:
    """Run ``listing check --online --format json`` and return its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(
            ["listing", "check", str(path), "--online", "--format", "json", "--lang", "en", *extra]
        )
    code = exited.value.code
    assert isinstance(code, int)
    return code


def _rules(document: dict[str, object]) -> list[tuple[str, str]]:
    """(rule, field) of each finding of a JSON report."""
    findings = document["findings"]
    assert isinstance(findings, list)
    return [(item["rule"], item["field"]) for item in findings]


# The sandbox gateway serves plain http on loopback, so the https rule always fires here;
# what these tests look at is the URL verification.
_HTTPS_FINDINGS = [("url.https", "data_callback_url"), ("url.https", "command_callback_url")]


def test_online_verification_passes_against_the_sandbox_gateway(
    listing_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the sandbox Token and EncodingAESKey both callback URLs answer the echo."""
    for variable in ("WECOM_SUITE_ID", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY"):
        monkeypatch.delenv(variable, raising=False)
    code = _check_online(listing_path)
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert _rules(document) == _HTTPS_FINDINGS
    assert [(item["field"], item["ok"]) for item in document["verifications"]] == [
        ("data_callback_url", True),
        ("command_callback_url", True),
    ]


def test_online_verification_fails_with_a_wrong_token(
    listing_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Token that differs from the gateway's is a clear finding on each callback URL."""
    monkeypatch.delenv("WECOM_SUITE_ID", raising=False)
    monkeypatch.setenv("WECOM_TOKEN", "wrongToken123")
    _check_online(listing_path)
    document = json.loads(capsys.readouterr().out)
    assert _rules(document) == [
        *_HTTPS_FINDINGS,
        ("callback.verification", "data_callback_url"),
        ("callback.verification", "command_callback_url"),
    ]
    verification = document["findings"][2]
    assert verification["message"].startswith("URL verification of http://127.0.0.1:")
    assert "check Token and EncodingAESKey" in verification["expected"]


async def test_wrong_echo_and_unreachable_urls_are_findings(unused_tcp_port: int) -> None:
    """A URL that answers something else, or nothing, fails with its own detail."""

    async def wrong_echo(_: web.Request) -> web.Response:
        return web.Response(text="success")

    app = web.Application()
    app.router.add_get("/cb", wrong_echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        results = await verify_callback_urls(
            {
                "data_callback_url": f"http://127.0.0.1:{port}/cb",
                "command_callback_url": f"http://127.0.0.1:{unused_tcp_port}/cb",
            },
            SANDBOX_TOKEN,
            SANDBOX_AES_KEY,
            timeout=2,
        )
    finally:
        await runner.cleanup()
    details = [(item.field, item.finding.detail if item.finding else None) for item in results]
    assert details == [("data_callback_url", "body"), ("command_callback_url", "connect")]
    unreachable = results[1].finding
    assert unreachable is not None
    assert unreachable.params["host"] == "127.0.0.1"
    assert unreachable.params["port"] == unused_tcp_port


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_failures_are_explained_in_words(
    unused_tcp_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], lang: str
) -> None:
    """A refused connection and an unknown host read as what happened, never as an exception
    class name (ClientConnectorError, …)."""
    write_images(tmp_path)
    listing = clean_listing()
    listing["data_callback_url"] = f"http://127.0.0.1:{unused_tcp_port}/wecom/data"
    listing["command_callback_url"] = "https://no-such-host.invalid/wecom/command"
    path = write_listing(tmp_path, listing)
    with pytest.raises(SystemExit):
        main(["listing", "check", str(path), "--online", "--lang", lang])
    text = capsys.readouterr().out
    assert "Error" not in text.replace("error:", "")
    if lang == "en":
        assert f"could not connect to 127.0.0.1:{unused_tcp_port}" in text
        assert "could not resolve the host name no-such-host.invalid" in text
    else:
        assert f"无法连接 127.0.0.1:{unused_tcp_port}" in text
        assert "无法解析" in text


@pytest.fixture
def tls_gateway(tmp_path: Path) -> Iterator[str]:
    """A sandbox gateway served over https on loopback with a self-signed certificate, in a
    thread of its own; yields its base URL (the certificate is tmp_path/cert.pem)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the https test needs the openssl command (Debian package openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subject = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(  # noqa: S603 -- fixed arguments, no shell
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[int] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def serve() -> None:
        bus = InProcessBus(BASE_TOPOLOGY)
        await bus.start()
        runner = web.AppRunner(build_gateway_app(GatewaySettings(), bus), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        started.set_result(runner.addresses[0][1])
        await stop.wait()
        await runner.cleanup()
        await bus.close()

    # The gateway's log lines would land in the stdout the test parses as the JSON report.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{started.result(timeout=30)}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
        structlog.reset_defaults()


def test_an_untrusted_certificate_is_named_as_such(
    tls_gateway: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --ca-file the self-signed certificate fails, and the report says so in words."""
    write_images(tmp_path)
    listing = clean_listing()
    listing["data_callback_url"] = f"{tls_gateway}/wecom/data"
    listing["command_callback_url"] = f"{tls_gateway}/wecom/command"
    path = write_listing(tmp_path, listing)
    assert _check_online(path) == 1
    document = json.loads(capsys.readouterr().out)
    assert {item["rule"] for item in document["findings"]} == {"callback.verification"}
    messages = [item["message"] for item in document["findings"]]
    assert len(messages) == 2
    assert all(m.startswith("certificate not valid for localhost") for m in messages), messages


def test_clean_listing_passes_online_against_an_https_sandbox_gateway(
    tls_gateway: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Served over https, as WeCom requires, the whole check passes: exit 0, no finding."""
    for variable in ("WECOM_SUITE_ID", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY"):
        monkeypatch.delenv(variable, raising=False)
    write_images(tmp_path)
    listing = clean_listing()
    listing["data_callback_url"] = f"{tls_gateway}/wecom/data"
    listing["command_callback_url"] = f"{tls_gateway}/wecom/command"
    path = write_listing(tmp_path, listing)
    code = _check_online(path, "--ca-file", str(tmp_path / "cert.pem"))
    document = json.loads(capsys.readouterr().out)
    assert (code, document["ok"], document["findings"]) == (0, True, [])
    assert [(item["field"], item["ok"]) for item in document["verifications"]] == [
        ("data_callback_url", True),
        ("command_callback_url", True),
    ]
