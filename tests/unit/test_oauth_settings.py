"""The sign-in settings of the gateway and the authorize URL they produce."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr, ValidationError

from gateway.settings import GatewaySettings
from gateway.web.oauth import SignInConfig, error_page
from shared.sandbox import SANDBOX_API_BASE, SANDBOX_SUITE_ID


def real(**values: object) -> GatewaySettings:
    """Settings with real (non-sandbox) credentials."""
    return GatewaySettings(
        wecom_suite_id="wwsuite",
        wecom_suite_secret=SecretStr("s"),
        wecom_token=SecretStr("token"),
        wecom_encoding_aes_key=SecretStr("a" * 43),
        **values,  # type: ignore[arg-type]
    )


def test_defaults_follow_public_base_url() -> None:
    """Without settings, domain, origins, cookies and OAuth base follow the local sandbox URL."""
    settings = GatewaySettings()
    assert settings.public_base_url == "http://127.0.0.1:8080"
    assert settings.trusted_domain == "127.0.0.1:8080"
    assert settings.allowed_origins == frozenset({"http://127.0.0.1:8080"})
    assert settings.oauth_session_ttl_s == 8 * 3600
    assert not settings.secure_cookies
    assert settings.oauth_base == SANDBOX_API_BASE


def test_production_values() -> None:
    """Real settings normalise the base URL and domain, add origins, and use secure cookies."""
    settings = real(
        public_base_url="https://App.Example.com/",
        oauth_allowed_origins="https://www.example.com, http://localhost:3000",
    )
    assert settings.public_base_url == "https://App.Example.com"
    assert settings.trusted_domain == "app.example.com"
    assert settings.secure_cookies
    assert settings.oauth_base == "https://open.weixin.qq.com"
    assert settings.allowed_origins == frozenset(
        {"https://app.example.com", "https://www.example.com", "http://localhost:3000"}
    )
    assert real(wecom_trusted_domain="Web.Example.com:8443").trusted_domain == (
        "web.example.com:8443"
    )
    assert real(wecom_trusted_domain="web.example.com:443").trusted_domain == "web.example.com"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("public_base_url", "app.example.com"),
        ("public_base_url", "ftp://app.example.com"),
        ("public_base_url", "https://app.example.com/?x=1"),
        ("wecom_oauth_base", "open.weixin.qq.com"),
        ("wecom_trusted_domain", "https://app.example.com"),
        ("wecom_trusted_domain", "app.example.com/path"),
        ("oauth_allowed_origins", "https://a.example.com/path"),
        ("oauth_allowed_origins", "javascript:alert(1)"),
        ("oauth_session_ttl_s", 10),
    ],
)
def test_malformed_values_stop_the_start(field: str, value: object) -> None:
    """A malformed URL, domain, origin or too short session ttl is a validation error."""
    with pytest.raises(ValidationError):
        GatewaySettings(**{field: value})  # type: ignore[arg-type]


def test_authorize_url_is_the_third_party_form_of_section_9_1() -> None:
    """The authorize URL is §9.1's form: suite id as appid, snsapi_base, our callback, state."""
    config = SignInConfig.from_settings(
        GatewaySettings(public_base_url="https://app.example.com", wecom_oauth_base="https://o.x")
    )
    url = config.authorize_url("abc123")
    assert url.startswith("https://o.x/connect/oauth2/authorize?")
    assert url.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "appid": [SANDBOX_SUITE_ID],
        "redirect_uri": ["https://app.example.com/oauth/callback"],
        "response_type": ["code"],
        "scope": ["snsapi_base"],
        "state": ["abc123"],
    }


def test_error_pages_are_html_in_both_languages_and_escape_their_link() -> None:
    """Error pages are bilingual HTML and escape the retry link they show."""
    page = error_page("invalid_state", retry='/oauth/login?next="><script>')
    assert page.status == 400
    assert page.content_type == "text/html"
    assert page.text is not None
    assert "登录已失效" in page.text
    assert "Sign-in expired" in page.text
    assert "<script>" not in page.text
