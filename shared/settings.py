"""Settings fragments every service composes, and the one start-up loader.

Environment variable names are the public ones of design.md: one ``.env`` configures a
whole deployment. A service builds its ``Settings`` once with :func:`load_settings`, which
turns a validation failure into one line naming each bad variable -- never its value.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, ClassVar, Final, Literal, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    AnyUrl,
    BaseModel,
    Field,
    MongoDsn,
    NatsDsn,
    PostgresDsn,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.sandbox import (
    SANDBOX_AES_KEY,
    SANDBOX_API_BASE,
    SANDBOX_PROVIDER_CORPID,
    SANDBOX_PROVIDER_SECRET,
    SANDBOX_SUITE_ID,
    SANDBOX_SUITE_SECRET,
    SANDBOX_TOKEN,
)

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "console"]

DATA_KEY_BYTES: Final = 32
INTERNAL_API_KEY_MIN_CHARS: Final = 16


def _url_with_scheme(*schemes: str) -> Callable[[SecretStr], SecretStr]:
    """A validator: the URL's scheme is one of ``schemes`` and it names a host."""
    expected = " or ".join(f"{scheme}://" for scheme in schemes)

    def check(value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        scheme, sep, rest = text.partition("://")
        # Never the value in the message: the URL may carry a password.
        if not sep or scheme.lower() not in schemes:
            raise ValueError(f"must start with {expected}")
        if not rest.rpartition("@")[2].split("/", 1)[0]:
            raise ValueError(f"must name a host after {scheme.lower()}://")
        return SecretStr(text)

    return check


def check_data_key(value: SecretStr) -> SecretStr:
    """``DATA_KEY``'s format: base64 of 32 bytes.

    Raises:
        ValueError: another shape (the value is never in the message).
    """
    encoded = value.get_secret_value().strip()
    try:
        key = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        key = b""
    if len(key) != DATA_KEY_BYTES:
        raise ValueError(f"must be base64 of exactly {DATA_KEY_BYTES} bytes")
    return SecretStr(encoded)


def check_internal_api_key(value: SecretStr) -> SecretStr:
    """``INTERNAL_API_KEY``'s format: at least 16 characters.

    Raises:
        ValueError: too short (the value is never in the message).
    """
    key = value.get_secret_value().strip()
    if len(key) < INTERNAL_API_KEY_MIN_CHARS:
        raise ValueError(f"must be at least {INTERNAL_API_KEY_MIN_CHARS} characters")
    return SecretStr(key)


AmqpUrl = Annotated[SecretStr, AfterValidator(_url_with_scheme("amqp", "amqps"))]
"""``AMQP_URL``: ``amqp://`` or ``amqps://`` with a host (aio-pika loops on any other)."""
MongoUrl = Annotated[SecretStr, AfterValidator(_url_with_scheme("mongodb", "mongodb+srv"))]
"""``MONGO_URL``: ``mongodb://`` or ``mongodb+srv://`` with a host."""
DataKey = Annotated[SecretStr, AfterValidator(check_data_key)]
"""``DATA_KEY``: base64 of 32 bytes (surrounding blanks dropped)."""
InternalApiKey = Annotated[SecretStr, AfterValidator(check_internal_api_key)]
"""``INTERNAL_API_KEY``: at least 16 characters (surrounding blanks dropped)."""


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, env_file=None, hide_input_in_errors=True
    )


class LogSettings(_Base):
    """``LOG_LEVEL`` and ``LOG_FORMAT`` (console when stdout is a TTY, else JSON, if unset)."""

    log_level: LogLevel = "info"
    log_format: LogFormat | None = None

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class HttpSettings(_Base):
    """Where an HTTP service binds (``HTTP_HOST``, ``HTTP_PORT``) and how it bounds slow and
    greedy clients (docs/gateway.md, "Slow and greedy clients")."""

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # Complete request line + headers within this long of the connection opening (or of the
    # previous answer), a body within its own timeout, at most this many connections at once.
    http_header_timeout_s: float = Field(10.0, gt=0, le=300)
    http_body_timeout_s: float = Field(30.0, gt=0, le=600)
    http_max_connections: int = Field(1024, ge=1, le=100_000)


class BusSettings(_Base):
    """``AMQP_URL``: RabbitMQ when set; unset means the in-process bus (all-in-one only)."""

    amqp_url: AmqpUrl | None = None


# What a service needs once WeCom's credentials are real, and how to make it. Checked by
# load_settings together with every other setting (one run reports them all); the loaders in
# shared.storage.crypto say the same for settings built in code.
PRODUCTION_REQUIRED: Final = {
    "DATA_KEY": "DATA_KEY is required with real WeCom credentials: base64 of 32 random bytes, "
    "e.g. `python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`",
    "INTERNAL_API_KEY": "INTERNAL_API_KEY is required with real WeCom credentials: a long "
    "random string, e.g. `python -c 'import secrets;print(secrets.token_urlsafe(32))'`",
}


class StoreSettings(_Base):
    """``MONGO_URL`` (unset: the SQLite file in ``DATA_DIR``), ``MONGO_DB`` and ``DATA_KEY``.

    ``DATA_KEY`` is base64 of 32 bytes, checked here with every other setting;
    :func:`shared.storage.load_data_key` requires it with real credentials and, in sandbox
    mode only, generates ``DATA_DIR/data.key`` when it is unset.
    """

    # The variables of PRODUCTION_REQUIRED this service needs (it seals secrets at rest).
    production_requires: ClassVar[tuple[str, ...]] = ("DATA_KEY",)

    mongo_url: MongoUrl | None = None
    mongo_db: str = Field("wecom_suite", min_length=1, max_length=63)
    data_dir: Path = Path("data")
    data_key: DataKey | None = None


class WeComAppSettings(_Base):
    """The app's WeCom credentials; none configured means sandbox mode.

    In sandbox mode the public sandbox values of :mod:`shared.sandbox` fill the gaps. With a
    ``WECOM_SUITE_ID`` every secret must be given: nothing silently falls back to a default.
    A service started on its own runs in sandbox mode only when ``WECOM_SANDBOX=1`` asks for
    it (:func:`require_explicit_sandbox`); ``wecom-suite run`` needs no such request.
    """

    wecom_sandbox: bool = False
    wecom_suite_id: str | None = None
    wecom_suite_secret: SecretStr | None = None
    wecom_token: SecretStr | None = None
    wecom_encoding_aes_key: SecretStr | None = None
    wecom_provider_corpid: str | None = None
    wecom_provider_secret: SecretStr | None = None

    @field_validator("wecom_suite_id", "wecom_provider_corpid", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("wecom_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            token = value.get_secret_value()
            if not token or len(token) > 32 or not token.isascii() or not token.isalnum():
                raise ValueError("must be 1-32 letters or digits")
        return value

    @field_validator("wecom_encoding_aes_key")
    @classmethod
    def _check_aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            key = value.get_secret_value()
            if len(key) != 43 or not key.isascii() or not key.isalnum():
                raise ValueError("must be exactly 43 letters or digits")
        return value

    @model_validator(mode="after")
    def _credentials_complete(self) -> WeComAppSettings:
        if self.wecom_suite_id is None:
            return self
        if self.wecom_sandbox:
            raise ValueError("WECOM_SANDBOX=1 asks for the sandbox, but WECOM_SUITE_ID is set")
        missing = [
            name
            for name, value in (
                ("WECOM_SUITE_SECRET", self.wecom_suite_secret),
                ("WECOM_TOKEN", self.wecom_token),
                ("WECOM_ENCODING_AES_KEY", self.wecom_encoding_aes_key),
            )
            if value is None
        ]
        if missing:
            raise ValueError(f"{', '.join(missing)} required when WECOM_SUITE_ID is set")
        return self

    @property
    def sandbox(self) -> bool:
        """True when no real WeCom app is configured."""
        return self.wecom_suite_id is None

    @property
    def suite_id(self) -> str:
        return self.wecom_suite_id or SANDBOX_SUITE_ID

    @property
    def suite_secret(self) -> SecretStr:
        return self.wecom_suite_secret or SecretStr(SANDBOX_SUITE_SECRET)

    @property
    def callback_token(self) -> SecretStr:
        return self.wecom_token or SecretStr(SANDBOX_TOKEN)

    @property
    def encoding_aes_key(self) -> SecretStr:
        return self.wecom_encoding_aes_key or SecretStr(SANDBOX_AES_KEY)

    @property
    def provider_corpid(self) -> str | None:
        if self.wecom_provider_corpid is not None:
            return self.wecom_provider_corpid
        return SANDBOX_PROVIDER_CORPID if self.sandbox else None

    @property
    def provider_secret(self) -> SecretStr | None:
        if self.wecom_provider_secret is not None:
            return self.wecom_provider_secret
        return SecretStr(SANDBOX_PROVIDER_SECRET) if self.sandbox else None


class WeComApiSettings(WeComAppSettings):
    """``WECOM_API_BASE`` (sandbox: the bundled simulator) and the client's timeout."""

    wecom_api_base: str | None = None
    wecom_api_timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("wecom_api_base")
    @classmethod
    def _check_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @property
    def api_base(self) -> str:
        if self.wecom_api_base:
            return self.wecom_api_base
        return SANDBOX_API_BASE if self.sandbox else "https://qyapi.weixin.qq.com"


# A settings class: any class whose constructor reads the environment (a BaseSettings, or a
# protocol a service process needs of one).
S = TypeVar("S")

# pydantic's URL types: AnyUrl and its kin, and the multi-host DSNs that are not AnyUrls.
_URL_TYPES = (AnyUrl, MongoDsn, PostgresDsn, NatsDsn)


def secret_values(*settings: object) -> list[str]:
    """Every secret the given settings hold: what the log redactor must mask.

    Found by type, so no service lists its secrets by hand: each ``SecretStr`` (and
    ``SecretBytes``) field, and each property annotated as returning one (a default filled
    in, such as the sandbox's suite secret, is a value the service uses too), through nested
    models, optional fields and containers. A URL that carries a password (``AMQP_URL``,
    ``MONGO_URL``, any ``str`` or ``AnyUrl`` field) gives the whole URL and its password, as
    written and percent-decoded, since a library may log either.

    Args:
        *settings: pydantic models (``None`` and other values are walked or skipped).

    Returns:
        The values, each once, in field order.
    """
    found: dict[str, None] = {}
    for item in settings:
        for value in _secrets_in(item):
            found.setdefault(value)
    return list(found)


def _secrets_in(value: object) -> Iterator[str]:
    if isinstance(value, BaseModel):
        cls = type(value)
        for name in (*cls.model_fields, *cls.model_computed_fields, *_secret_properties(cls)):
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secrets_in(item)
    else:
        yield from _leaf_secrets(value)


def _leaf_secrets(value: object) -> Iterator[str]:
    if isinstance(value, SecretBytes):
        try:
            value = SecretStr(value.get_secret_value().decode())
        except UnicodeDecodeError:
            return  # not text, so it cannot appear in a log line as it is
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        yield secret
        yield from _url_password(secret)
        return
    text = str(value) if isinstance(value, _URL_TYPES) else value
    if isinstance(text, str):
        passwords = list(_url_password(text))
        if passwords:
            yield text
            yield from passwords


def _url_password(text: str) -> Iterator[str]:
    if "://" not in text or "@" not in text:
        return
    try:
        password = urlsplit(text).password
    except ValueError:
        return  # not a URL after all
    if password:
        yield password
        yield unquote(password)


def masked_url(url: str | SecretStr) -> str:
    """``url`` as a log line may show it: the password, if any, replaced by ``***``.

    For naming the server a process could not reach or sign in to (``AMQP_URL``,
    ``MONGO_URL``) without the secret; anything that is not a URL comes back as ``***``.
    """
    text = url.get_secret_value() if isinstance(url, SecretStr) else url
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:
        return "***"
    if password is None:
        return text
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{hosts}").geturl()


def _secret_properties(cls: type[BaseModel]) -> list[str]:
    """The names of ``cls``'s properties annotated as returning a secret."""
    names: list[str] = []
    for klass in cls.__mro__:
        for name, attribute in vars(klass).items():
            if not isinstance(attribute, property) or attribute.fget is None or name in names:
                continue
            try:
                returned = typing.get_type_hints(attribute.fget).get("return")
            except (NameError, TypeError):
                continue  # an annotation that does not resolve names no secret type
            kinds = typing.get_args(returned) or (returned,)
            if SecretStr in kinds or SecretBytes in kinds:
                names.append(name)
    return names


def describe_validation_error(error: ValidationError) -> str:
    """One line naming every bad variable and what is wrong, without any value."""
    return "; ".join(validation_problems(error))


def validation_problems(error: ValidationError) -> list[str]:
    """Each bad variable and what is wrong with it, one item each, without any value."""
    parts: list[str] = []
    for item in error.errors(include_input=False, include_url=False):
        location = [str(part) for part in item["loc"] if str(part) != "__root__"]
        message = str(item["msg"]).removeprefix("Value error, ")
        if location:
            parts.append(f"{location[0].upper()}: {message}")
        else:
            parts.append(message)
    return parts


SANDBOX_REFUSED: Final = (
    "WECOM_SUITE_ID is not set: a service started on its own needs the app's credentials, "
    "or WECOM_SANDBOX=1 to run in sandbox mode on the public sandbox keys"
)


def require_explicit_sandbox(settings: object) -> None:
    """Refuse sandbox mode nobody asked for: a service started on its own.

    A forgotten ``WECOM_SUITE_ID`` must not turn a production service into one that accepts
    callbacks signed with the public sandbox keys. ``wecom-suite run`` (the newcomer path)
    does not call this: sandbox mode stays its default.

    Args:
        settings: the process's settings; anything that is not ``WeComAppSettings`` passes.

    Raises:
        SystemExit: status 2, after one line on stderr naming the variable and the way out.
    """
    if isinstance(settings, WeComAppSettings) and settings.sandbox and not settings.wecom_sandbox:
        exit_on_configuration_error(SANDBOX_REFUSED)


def load_settings(cls: type[S]) -> S:
    """Build ``cls`` from the environment, or exit with status 2 and one clear line per bad
    variable: every problem at once (malformed values and what real credentials require), so
    that fixing them takes one restart, not one each."""
    problems: list[str] = []
    settings: S | None = None
    try:
        settings = cls()
    except ValidationError as exc:
        problems += validation_problems(exc)
    problems += missing_for_production(cls, os.environ)
    if settings is None or problems:
        exit_on_configuration_error(*problems)
    return settings


def missing_for_production(cls: type[object], environ: Mapping[str, str]) -> list[str]:
    """What ``cls`` (its ``production_requires``) needs with real credentials and ``environ``
    lacks; nothing in sandbox mode (no ``WECOM_SUITE_ID``)."""
    present = {name.upper() for name, value in environ.items() if value.strip()}
    if "WECOM_SUITE_ID" not in present:
        return []
    required: tuple[str, ...] = getattr(cls, "production_requires", ())
    return [PRODUCTION_REQUIRED[name] for name in required if name not in present]


def exit_on_configuration_error(*problems: str) -> NoReturn:
    """Stop the process at start-up: one line on stderr per problem (logging may not be set
    up yet), then status 2."""
    for problem in problems:
        print(f"configuration error: {problem}", file=sys.stderr)
    raise SystemExit(2)
