"""Wiring of the gateway: composes the callback path (``gateway.callbacks``) and the parts of
the web side (``gateway.web``) asked for into one aiohttp app."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.callbacks.handlers import CallbackHandlers
from gateway.callbacks.metrics import GatewayMetrics
from gateway.callbacks.processor import CallbackProcessor, ReceiveIdPolicy
from gateway.callbacks.publisher import EventPublisher
from gateway.replay import ReplayCache
from gateway.settings import GatewaySettings
from gateway.web.admin import AdminHandlers
from gateway.web.console import ConsoleHandlers
from gateway.web.demo import demo_routes
from gateway.web.install import InstallHandlers
from gateway.web.install_qrcode import AppQrCodes
from gateway.web.install_state import InstallStateCodec
from gateway.web.internal_api import MAX_NOTIFICATION_BYTES, InternalApi
from gateway.web.jssdk import JsSdkHandlers
from gateway.web.oauth import SignInConfig, SignInHandlers
from gateway.web.oauth_codecs import SessionCodec, StateCodec
from shared.auth_client import AuthClient
from shared.bus.abc import Bus
from shared.http import add_health_routes, add_security_headers, error_middleware
from shared.lifecycle import Readiness
from shared.metrics import new_registry, wecom_call_observer
from shared.notify.client import NotifyReads
from shared.tokens import TokensClient
from shared.wecom.api import WeComClient
from shared.wecom.crypto import CallbackCipher


@dataclass(frozen=True, slots=True)
class MemberPages:
    """The pages members open, signed with ``data_key`` (the 32-byte DATA_KEY): sign-in and
    JS-SDK signatures (docs/oauth.md), the install pages (docs/installs.md) and the
    business-settings page."""

    data_key: bytes


@dataclass(frozen=True, slots=True)
class DemoPage:
    """The sandbox demo page at ``/demo/``."""


@dataclass(frozen=True, slots=True)
class InternalApiRoutes:
    """The internal API (``/api/v1/…``), guarded by ``api_key`` (INTERNAL_API_KEY)."""

    api_key: str


@dataclass(frozen=True, slots=True)
class ConsolePages:
    """The developer console (``/console``, and ``/`` leading to it; docs/console.md): signed
    in with ``api_key`` (INTERNAL_API_KEY), its session signed with ``data_key``."""

    api_key: str
    data_key: bytes


# One part of the web side; the callback routes are always served.
WebPart = MemberPages | DemoPage | InternalApiRoutes | ConsolePages


@dataclass(frozen=True, slots=True)
class WebClients:
    """What the web side calls: ``rpc.tokens``/``rpc.auth`` over the bus and WeCom through a
    client the app owns, unless given here (tests and the all-in-one share their own)."""

    tokens: TokensClient | None = None
    auth: AuthClient | None = None
    wecom: WeComClient | None = None


def build_gateway_app(
    settings: GatewaySettings,
    bus: Bus,
    *,
    web_parts: Sequence[WebPart] = (),
    clients: WebClients = WebClients(),
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
    wall_clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The gateway's aiohttp application, publishing to ``bus`` (started by the caller): the
    callback routes, then each of ``web_parts`` in order, then health and metrics."""
    registry = registry or new_registry()
    readiness = readiness or Readiness()
    # The callback routes enforce their own, much smaller, body limit while reading.
    client_max_size = max(settings.callback_max_body_bytes, MAX_NOTIFICATION_BYTES)
    app = web.Application(middlewares=[error_middleware], client_max_size=client_max_size)
    add_security_headers(app)
    app.add_routes(_callback_handlers(settings, bus, registry, wall_clock, monotonic).routes())
    tokens = clients.tokens or TokensClient(bus)
    auth = clients.auth or AuthClient(bus)
    wecom = clients.wecom
    for part in web_parts:
        match part:
            case MemberPages(data_key=data_key):
                wecom = wecom or _owned_client(app, settings, registry)
                _add_member_pages(app, settings, bus, data_key, tokens, auth, wecom, wall_clock)
            case DemoPage():
                app.add_routes(demo_routes())
            case InternalApiRoutes(api_key=api_key):
                internal_api = InternalApi(
                    bus=bus,
                    auth=auth,
                    api_key=api_key,
                    body_timeout_s=settings.http_body_timeout_s,
                )
                app.add_routes(internal_api.routes())
            case ConsolePages(api_key=api_key, data_key=data_key):
                console = ConsoleHandlers(
                    api_key=api_key,
                    data_key=data_key,
                    auth=auth,
                    tokens=tokens,
                    notify=NotifyReads(bus),
                    dead_letters=bus.dead_letter_counts,
                    public_base_url=settings.public_base_url,
                    secure_cookies=settings.secure_cookies,
                    sandbox=settings.sandbox,
                    wall_clock=wall_clock,
                )
                app.add_routes(console.routes())
    readiness.add("bus", lambda: bus.is_ready)
    add_health_routes(app, readiness, registry)
    return app


def _callback_handlers(
    settings: GatewaySettings,
    bus: Bus,
    registry: CollectorRegistry,
    wall_clock: Callable[[], float],
    monotonic: Callable[[], float],
) -> CallbackHandlers:
    """The callback path: verify, decrypt, publish with a confirm, then answer WeCom."""
    metrics = GatewayMetrics.create(registry)
    processor = CallbackProcessor(
        token=settings.callback_token.get_secret_value(),
        cipher=CallbackCipher(settings.encoding_aes_key.get_secret_value()),
        policy=ReceiveIdPolicy.from_setting(
            settings.wecom_receive_ids,
            suite_id=settings.suite_id,
            provider_corp_id=settings.provider_corpid,
        ),
        suite_id=settings.suite_id,
        timestamp_window_s=settings.callback_timestamp_window_s,
        max_body_bytes=settings.callback_max_body_bytes,
    )
    publisher = EventPublisher(
        bus,
        ReplayCache(settings.callback_replay_ttl_s, settings.callback_replay_cache_size),
        metrics,
        timeout_s=settings.callback_publish_timeout_s,
        monotonic=monotonic,
    )
    return CallbackHandlers(
        processor,
        publisher,
        metrics,
        max_body_bytes=settings.callback_max_body_bytes,
        body_timeout_s=settings.http_body_timeout_s,
        wall_clock=wall_clock,
    )


def _add_member_pages(
    app: web.Application,
    settings: GatewaySettings,
    bus: Bus,
    data_key: bytes,
    tokens: TokensClient,
    auth: AuthClient,
    wecom: WeComClient,
    wall_clock: Callable[[], float],
) -> None:
    """Sign-in, JS-SDK, the install pages and the business-settings page."""
    _add_sign_in(app, settings, data_key, tokens, auth, wecom, wall_clock)
    installs = InstallHandlers(
        bus=bus,
        tokens=tokens,
        auth=auth,
        wecom=wecom,
        states=InstallStateCodec(data_key),
        suite_id=settings.suite_id,
        install_base=settings.install_base,
        public_base_url=settings.public_base_url,
        rate_per_minute=settings.install_rate_per_minute,
        installs_open=settings.installs_open,
        qrcodes=_qrcodes(app, settings, wecom, tokens),
        wall_clock=wall_clock,
    )
    app.add_routes(installs.routes())
    app.add_routes(
        AdminHandlers(
            tokens=tokens,
            auth=auth,
            wecom=wecom,
            data_key=data_key,
            session_ttl_s=settings.oauth_session_ttl_s,
            secure_cookies=settings.secure_cookies,
            wall_clock=wall_clock,
        ).routes()
    )


def _owned_client(
    app: web.Application, settings: GatewaySettings, registry: CollectorRegistry
) -> WeComClient:
    """A WeCom client closed with the app, its calls timed in ``registry``."""
    client = WeComClient(
        settings.api_base,
        timeout_s=settings.wecom_api_timeout_s,
        observer=wecom_call_observer(registry),
    )

    async def close_wecom(_: web.Application) -> None:
        await client.close()

    app.on_cleanup.append(close_wecom)
    return client


def _add_sign_in(
    app: web.Application,
    settings: GatewaySettings,
    data_key: bytes,
    tokens: TokensClient,
    auth: AuthClient,
    wecom: WeComClient,
    wall_clock: Callable[[], float],
) -> None:
    sessions = SessionCodec(data_key, ttl_s=settings.oauth_session_ttl_s)
    sign_in = SignInHandlers(
        SignInConfig.from_settings(settings),
        StateCodec(data_key),
        sessions,
        tokens,
        wecom,
        auth,
        callback_rate_per_minute=settings.oauth_callback_rate_per_minute,
        wall_clock=wall_clock,
    )
    jssdk = JsSdkHandlers(
        sessions, tokens, auth, trusted_domain=settings.trusted_domain, wall_clock=wall_clock
    )
    app.add_routes(sign_in.routes() + jssdk.routes())


def _qrcodes(
    app: web.Application, settings: GatewaySettings, wecom: WeComClient, tokens: TokensClient
) -> AppQrCodes:
    """The install QR code cache of ``GET /install/qrcode``; its image downloads close with
    the app."""
    qrcodes = AppQrCodes(wecom, tokens, settings.suite_id, timeout_s=settings.wecom_api_timeout_s)

    async def close(_: web.Application) -> None:
        await qrcodes.close()

    app.on_cleanup.append(close)
    return qrcodes
