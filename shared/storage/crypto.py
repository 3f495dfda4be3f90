"""AES-GCM encryption at rest for permanent codes, secrets and tokens (design.md: never in clear).

A sealed value is text: ``v1:`` followed by base64 of nonce (12 bytes), ciphertext and tag
(16 bytes). The version prefix names the format and key generation, so a later key rotation
can tell old values from new ones. The caller's ``context`` (for example
``"corp_auth/wx123/permanent_code"``) is authenticated as associated data: a sealed value
copied into another record or field fails to open instead of decrypting there.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final, Protocol

from Crypto.Cipher import AES
from pydantic import SecretStr

from shared.errors import ConfigurationError, ServiceError
from shared.logging import register_secret
from shared.settings import PRODUCTION_REQUIRED, check_data_key, check_internal_api_key

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
VERSION: Final = "v1"
KEY_FILE_NAME: Final = "data.key"
API_KEY_FILE_NAME: Final = "internal-api.key"


class SealedValueError(ServiceError):
    """A sealed value is malformed, was tampered with, belongs elsewhere or needs another key."""

    code = "sealed_value_error"
    reason = "a stored secret could not be decrypted"


class SecretBox:
    """Seals and opens short secrets with one 32-byte AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the data key must be {KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:  # the key must never reach a log line or a traceback
        return "SecretBox(<key hidden>)"

    def seal(self, plaintext: str, *, context: str) -> str:
        """Encrypt ``plaintext`` bound to ``context``; every call uses a fresh random nonce."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(_associated_data(context))
        ciphertext, tag = cipher.encrypt_and_digest(plaintext.encode("utf-8"))
        return f"{VERSION}:{base64.b64encode(nonce + ciphertext + tag).decode('ascii')}"

    def open(self, sealed: str, *, context: str) -> str:
        """Decrypt a value made by :meth:`seal` with the same key and context.

        Raises:
            SealedValueError: unknown version, malformed text, tampering, another context
                or another key (GCM cannot tell the last three apart, and need not).
        """
        version, sep, body = sealed.partition(":")
        if not sep or version != VERSION:
            raise SealedValueError("a stored secret has an unknown format version")
        try:
            raw = base64.b64decode(body.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise SealedValueError("a stored secret is not valid base64") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise SealedValueError("a stored secret is truncated")
        nonce, ciphertext, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(_associated_data(context))
        try:
            plaintext = cipher.decrypt_and_verify(ciphertext, tag)
        except ValueError:
            raise SealedValueError(
                "a stored secret failed authentication (tampered, moved, or another DATA_KEY)"
            ) from None
        return bytes(plaintext).decode("utf-8")


def _associated_data(context: str) -> bytes:
    # The version is authenticated too, so a future format cannot be confused with this one.
    return f"wecom-suite/{VERSION}/{context}".encode()


def load_data_key(setting: SecretStr | None, data_dir: Path, *, sandbox: bool) -> bytes:
    """The 32-byte data key from ``DATA_KEY``, or in sandbox mode from ``DATA_DIR/data.key``.

    In sandbox mode without ``DATA_KEY`` the key file is generated once (mode 0600) and reused
    afterwards, so sandbox data survives restarts. The key's base64 form is registered with
    the log redactor.

    ``DATA_KEY``'s format is the settings model's to check (:data:`shared.settings.DataKey`),
    with every other setting at once; it is checked again here, the same way, for a caller
    whose model holds a plain ``SecretStr``.

    Raises:
        ConfigurationError: production without ``DATA_KEY``, a malformed key (the value is
            never echoed), or a key file that other users can read.
    """
    if setting is not None:
        encoded = _checked(check_data_key, setting, "DATA_KEY")
        key = _decode_key(encoded, "DATA_KEY")
    elif not sandbox:
        raise ConfigurationError(PRODUCTION_REQUIRED["DATA_KEY"])
    else:
        encoded, key = _sandbox_key(data_dir / KEY_FILE_NAME)
    register_secret(encoded)
    return key


def load_internal_api_key(setting: SecretStr | None, data_dir: Path, *, sandbox: bool) -> str:
    """``INTERNAL_API_KEY``, or in sandbox mode one generated once into
    ``DATA_DIR/internal-api.key`` (0600, like the data key). Registered with the redactor.

    The key's format is the settings model's to check (:data:`shared.settings.InternalApiKey`);
    it is checked again here, the same way, for a caller whose model holds a plain
    ``SecretStr``.

    Raises:
        ConfigurationError: production without ``INTERNAL_API_KEY``, or a key shorter than
            16 characters (the value is never echoed).
    """
    if setting is not None:
        key = _checked(check_internal_api_key, setting, "INTERNAL_API_KEY")
    elif not sandbox:
        raise ConfigurationError(PRODUCTION_REQUIRED["INTERNAL_API_KEY"])
    else:
        key, _ = _sandbox_key(data_dir / API_KEY_FILE_NAME)
    register_secret(key)
    return key


def _checked(check: Callable[[SecretStr], SecretStr], setting: SecretStr, name: str) -> str:
    try:
        return check(setting).get_secret_value()
    except ValueError as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


def _decode_key(encoded: str, source: str) -> bytes:
    try:
        key = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ConfigurationError(f"{source} must be base64 of {KEY_BYTES} bytes") from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{source} must be base64 of exactly {KEY_BYTES} bytes")
    return key


def _sandbox_key(path: Path) -> tuple[str, bytes]:
    if not path.exists():
        _create_key_file(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"{path} is accessible to other users (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}` or set DATA_KEY"
        )
    encoded = path.read_text(encoding="ascii").strip()
    return encoded, _decode_key(encoded, f"the key file {path}")


def _create_key_file(path: Path) -> None:
    """Write a fresh key to ``path`` atomically, never replacing a key another process wrote.

    The key goes to a private temporary file first (0600 from creation, so it is never
    readable by others even for an instant), then is hard-linked into place: ``link`` fails
    if the name exists, so two processes starting at once end up sharing the first key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(encoded + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class DataKeySettings(Protocol):
    """The settings a service's data key comes from (``DATA_KEY``, ``DATA_DIR``, sandbox)."""

    @property
    def data_key(self) -> SecretStr | None: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def sandbox(self) -> bool: ...


def secret_box_for(settings: DataKeySettings) -> SecretBox:
    """The box that seals this service's secrets at rest, under its ``DATA_KEY``.

    Raises:
        ConfigurationError: as :func:`load_data_key`.
    """
    return SecretBox(load_data_key(settings.data_key, settings.data_dir, sandbox=settings.sandbox))
