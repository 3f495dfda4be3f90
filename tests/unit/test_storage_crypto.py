"""Encryption at rest: sealing with AES-GCM and where the data key comes from."""

from __future__ import annotations

import base64
import dataclasses
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.errors import ConfigurationError
from shared.storage.crypto import (
    KEY_FILE_NAME,
    SealedValueError,
    SecretBox,
    load_data_key,
    secret_box_for,
)

CONTEXT = "corp_auth/wx1/permanent_code"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(os.urandom(32))


def test_sealed_value_opens_to_the_plaintext(box: SecretBox) -> None:
    """A round trip returns the secret, including non-ASCII text."""
    sealed = box.seal("永久授权码-abc", context=CONTEXT)
    assert sealed.startswith("v1:")
    assert "abc" not in sealed
    assert box.open(sealed, context=CONTEXT) == "永久授权码-abc"


def test_sealing_twice_gives_different_text(box: SecretBox) -> None:
    """A fresh nonce per seal: equal secrets are not recognisable at rest."""
    assert box.seal("same", context=CONTEXT) != box.seal("same", context=CONTEXT)


def test_tampered_value_is_rejected(box: SecretBox) -> None:
    """Any flipped bit fails authentication instead of decrypting to garbage."""
    raw = bytearray(base64.b64decode(box.seal("secret", context=CONTEXT)[3:]))
    raw[14] ^= 0x01
    with pytest.raises(SealedValueError):
        box.open("v1:" + base64.b64encode(bytes(raw)).decode(), context=CONTEXT)


def test_value_moved_to_another_context_is_rejected(box: SecretBox) -> None:
    """A sealed value copied to another record or field does not open there."""
    sealed = box.seal("secret", context=CONTEXT)
    with pytest.raises(SealedValueError):
        box.open(sealed, context="corp_auth/wx2/permanent_code")


def test_value_sealed_with_another_key_is_rejected(box: SecretBox) -> None:
    """A changed DATA_KEY is reported, not turned into wrong secrets."""
    sealed = SecretBox(os.urandom(32)).seal("secret", context=CONTEXT)
    with pytest.raises(SealedValueError):
        box.open(sealed, context=CONTEXT)


@pytest.mark.parametrize("sealed", ["", "secret", "v2:AAAA", "v1:***", "v1:" + "A" * 20])
def test_malformed_sealed_values_are_rejected(box: SecretBox, sealed: str) -> None:
    """Unknown versions, bad base64 and truncated values all raise the same typed error."""
    with pytest.raises(SealedValueError):
        box.open(sealed, context=CONTEXT)


def test_secret_box_requires_a_32_byte_key() -> None:
    """AES-256 only: a short key is a programming error caught at construction."""
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox(b"short")


def test_secret_box_repr_hides_the_key() -> None:
    """The key never appears in a repr, hence never in a traceback or log line."""
    key = b"k" * 32
    assert "kkkk" not in repr(SecretBox(key))


def test_configured_data_key_is_used_in_production(tmp_path: Path) -> None:
    """DATA_KEY is decoded from base64 and no key file is written."""
    key = os.urandom(32)
    setting = SecretStr(base64.b64encode(key).decode())
    assert load_data_key(setting, tmp_path, sandbox=False) == key
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_production_without_data_key_is_a_configuration_error(tmp_path: Path) -> None:
    """Real credentials never run on a generated key that nobody backed up."""
    with pytest.raises(ConfigurationError, match="DATA_KEY"):
        load_data_key(None, tmp_path, sandbox=False)
    assert not (tmp_path / KEY_FILE_NAME).exists()


@pytest.mark.parametrize(
    "value",
    ["not base64 at all!", base64.b64encode(b"x" * 16).decode(), "ünïcode-secret-value"],
)
def test_malformed_data_key_is_rejected_without_echoing_it(tmp_path: Path, value: str) -> None:
    """The error names DATA_KEY and what is wrong, never the value."""
    with pytest.raises(ConfigurationError, match="DATA_KEY") as caught:
        load_data_key(SecretStr(value), tmp_path, sandbox=True)
    assert value not in str(caught.value)


def test_sandbox_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    """The generated key is mode 0600 and the same on the next start, so data stays readable."""
    data_dir = tmp_path / "data"
    first = load_data_key(None, data_dir, sandbox=True)
    path = data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert load_data_key(None, data_dir, sandbox=True) == first
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE_NAME]  # no temporary left over


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A world-readable key protects nothing: refuse it and say how to fix it."""
    load_data_key(None, tmp_path, sandbox=True)
    path = tmp_path / KEY_FILE_NAME
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_data_key(None, tmp_path, sandbox=True)


def test_corrupt_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A damaged key file stops start-up instead of being silently replaced."""
    path = tmp_path / KEY_FILE_NAME
    path.write_text("garbage\n")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="key file"):
        load_data_key(None, tmp_path, sandbox=True)


def test_secret_box_for_reads_the_services_data_key(tmp_path: Path) -> None:
    """Every service builds its box from its settings the same way: DATA_KEY when set."""

    @dataclasses.dataclass(frozen=True)
    class Settings:
        data_key: SecretStr | None
        data_dir: Path
        sandbox: bool

    key = bytes(range(32))
    box = secret_box_for(Settings(SecretStr(base64.b64encode(key).decode()), tmp_path, False))
    sealed = SecretBox(key).seal("permanent-code", context="corp")
    assert box.open(sealed, context="corp") == "permanent-code"
