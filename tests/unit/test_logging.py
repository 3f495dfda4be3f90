"""Log redaction: secrets, tokens, tickets, permanent codes, AES keys and content never print."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from shared.logging import REDACTED, SecretRedactor, configure_logging, is_sensitive_key
from shared.wecom.crypto import DecryptedMessage

AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.mark.parametrize(
    "key",
    [
        "suite_secret",
        "access_token",
        "suite_access_token",
        "suite_ticket",
        "jsapi_ticket",
        "permanent_code",
        "encoding_aes_key",
        "content",
        "message_content",
        "auth_code",
        "code",
        "echostr",
        "plaintext",
        "Authorization",
        "internal_api_key",
        "password",
    ],
)
def test_sensitive_keys_are_recognised(key: str) -> None:
    """Every kind of secret named in design.md is masked by key."""
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key", ["event_id", "errcode", "route", "token_kind", "ticket_age_s", "corp_id", "status"]
)
def test_harmless_keys_are_kept(key: str) -> None:
    """Ids, error codes and descriptors stay readable."""
    assert not is_sensitive_key(key)


def test_redactor_masks_nested_values_and_registered_secrets() -> None:
    """Registered values are masked inside any string, nested or not."""
    redactor = SecretRedactor(["very-secret-token-value"])
    out = redactor(
        None,
        "info",
        {
            "event": "failed with very-secret-token-value inside",
            "details": {"permanent_code": "pc-1234567", "note": "key " + AES_KEY},
            "items": ["very-secret-token-value", 3],
            "corp_id": "wx123",
        },
    )
    assert "very-secret-token-value" not in json.dumps(out)
    assert out["details"]["permanent_code"] == REDACTED
    assert AES_KEY not in out["details"]["note"]
    assert out["corp_id"] == "wx123"
    assert out["items"][1] == 3


def test_configured_json_logs_never_contain_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """End to end through structlog and the stdlib bridge, rendered as JSON lines."""
    configure_logging(
        "debug",
        "json",
        service="test",
        version="0",
        secrets=["s3cr3t-value-xyz"],
        cache_loggers=False,
    )
    try:
        log = structlog.get_logger("test")
        log.info("token_refreshed", access_token="tok-abcdef-123", corp_id="wx1")
        log.info("callback", content="你好 private words", suite_ticket="ticket-123456")
        logging.getLogger("aiohttp.access").warning("stdlib line with s3cr3t-value-xyz")
        # A stray log of a decrypted callback: its repr hides the body (a tuple would not,
        # the redactor renders tuples item by item).
        log.info("opened", decrypted=DecryptedMessage(b"hush-hush-body", b"ww1"))
        try:
            decrypted_plaintext = "member wrote: hush-hush-words"
            raise ValueError("boom s3cr3t-value-xyz and " + AES_KEY + decrypted_plaintext[:0])
        except ValueError:
            log.exception("failed")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert len(lines) == 5
    # The last one lives only in a local variable of the failing frame: no locals are logged.
    secrets = ("tok-abcdef-123", "private words", "ticket-123456", "s3cr3t-value-xyz", AES_KEY)
    for secret in (*secrets, "hush-hush-words", "hush-hush-body"):
        assert secret not in out
    assert lines[0]["corp_id"] == "wx1"
    assert lines[0]["service"] == "test"
    assert lines[0]["event"] == "token_refreshed"


@pytest.mark.parametrize("key", ["internal_api_key_file", "data_key_path", "secret_file"])
def test_where_a_secret_is_kept_is_not_masked(key: str) -> None:
    """A path to a key file is what a newcomer needs to read, not the secret itself."""
    redactor = SecretRedactor()
    out = redactor(None, "info", {"event": "sandbox_mode", key: "data/internal-api.key"})
    assert out[key] == "data/internal-api.key"


def test_key_file_path_does_not_unmask_secrets() -> None:
    """Secret-looking keys and registered secret values stay masked next to a key-file path."""
    secret = "registered-internal-api-key-value"
    redactor = SecretRedactor([secret])
    out = redactor(
        None,
        "info",
        {
            "event": "sandbox_mode",
            "internal_api_key": "plain-key-value-1234",
            "data_key": "another-key-value",
            "suite_secret": "s3cr3t-value",
            "internal_api_key_file": f"data/{secret}",
        },
    )
    assert out["internal_api_key"] == REDACTED
    assert out["data_key"] == REDACTED
    assert out["suite_secret"] == REDACTED
    assert out["internal_api_key_file"] == f"data/{REDACTED}"
