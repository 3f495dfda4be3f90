"""The secrets to redact are found in each settings model by type, never listed per service."""

from __future__ import annotations

from pydantic import AnyUrl, BaseModel, MongoDsn, SecretBytes, SecretStr

from shared.settings import secret_values


class Inner(BaseModel):
    api_key: SecretStr
    label: str = "inner-label"


class Sample(BaseModel):
    secret: SecretStr
    maybe: SecretStr | None = None
    unset: SecretStr | None = None
    raw: SecretBytes
    inner: Inner
    optional_inner: Inner | None = None
    listed: list[Inner] = []
    broker: SecretStr
    callback_url: str
    plain_url: str = "https://example.test/path"
    any_url: AnyUrl
    mongo: MongoDsn
    name: str = "not-a-secret"

    @property
    def effective(self) -> SecretStr:
        return self.maybe or SecretStr("fallback-value")

    @property
    def title(self) -> str:
        return "not-a-secret-either"


def test_every_secret_field_nested_optional_and_url_password_is_found() -> None:
    """SecretStr/SecretBytes fields at any depth, secret properties and URL passwords, once."""
    sample = Sample(
        secret="top-secret-1",
        maybe="maybe-secret-2",
        raw=b"raw-bytes-secret",
        inner=Inner(api_key="inner-secret-3"),
        optional_inner=Inner(api_key="optional-secret-4"),
        listed=[Inner(api_key="listed-secret-5")],
        broker="amqp://user:p%40ss-word6@broker:5672/vhost",
        callback_url="https://hook:hook-pass-7@hooks.test/cb",
        any_url="https://svc:url-pass-8@svc.test/",
        mongo="mongodb://db:mongo-pass-9@h1:27017,h2:27017/app",
    )
    assert secret_values(sample) == [
        "top-secret-1",
        "maybe-secret-2",
        "raw-bytes-secret",
        "inner-secret-3",
        "optional-secret-4",
        "listed-secret-5",
        "amqp://user:p%40ss-word6@broker:5672/vhost",
        "p%40ss-word6",
        "p@ss-word6",
        "https://hook:hook-pass-7@hooks.test/cb",
        "hook-pass-7",
        "https://svc:url-pass-8@svc.test/",
        "url-pass-8",
        "mongodb://db:mongo-pass-9@h1:27017,h2:27017/app",
        "mongo-pass-9",
    ]


def test_a_secret_property_counts_when_its_field_is_unset() -> None:
    """A default filled in by a property (the sandbox's) is masked like a configured value."""
    sample = Sample(
        secret="top-secret-1",
        raw=b"raw-bytes-secret",
        inner=Inner(api_key="inner-secret-3"),
        broker="amqp://guest@broker/",
        callback_url="https://hooks.test/cb",
        any_url="https://svc.test/",
        mongo="mongodb://h1:27017/app",
    )
    assert secret_values(sample, None) == [
        "top-secret-1",
        "raw-bytes-secret",
        "inner-secret-3",
        "amqp://guest@broker/",
        "fallback-value",
    ]
