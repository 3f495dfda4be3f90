"""Wiring of the gateway: builds every collaborator from settings and the aiohttp app."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.demo import demo_routes
from gateway.domain import CallbackProcessor, ReceiveIdPolicy, ReplayCache
from gateway.handlers import CallbackHandlers
from gateway.install import InstallHandlers
from gateway.install_domain import InstallStateCodec
from gateway.internal_api import MAX_NOTIFICATION_BYTES, InternalApi
from gateway.jssdk import JsSdkHandlers
from gateway.metrics import GatewayMetrics
from gateway.oauth import SignInConfig, SignInHandlers
from gateway.oauth_domain import SessionCodec, StateCodec
from gateway.publisher import EventPublisher
from gateway.settings import GatewaySettings
from shared.auth_client import AuthClient
from shared.bus.abc import Bus
from shared.http import add_health_routes, add_security_headers, error_middleware
from shared.lifecycle import Readiness
from shared.metrics import new_registry, wecom_call_observer
from shared.tokens import TokensClient
from shared.wecom.api import WeComClient
from shared.wecom.crypto import CallbackCipher


def build_gateway_app(
    settings: GatewaySettings,
    bus: Bus,
    *,
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
    wall_clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    data_key: bytes | None = None,
    tokens: TokensClient | None = None,
    auth: AuthClient | None = None,
    wecom: WeComClient | None = None,
    serve_demo: bool = False,
    internal_api_key: str | None = None,
) -> web.Application:
    """The gateway's aiohttp application, publishing to ``bus`` (started by the caller).

    With ``data_key`` (the 32-byte DATA_KEY) it also serves member sign-in and JS-SDK
    signatures (docs/oauth.md), calling ``rpc.tokens``/``rpc.auth`` over ``bus`` unless
    ``tokens``/``auth`` are given, and WeCom through ``wecom`` (or a client it owns);
    ``serve_demo`` adds the sandbox demo page at ``/demo/``. With ``data_key`` it also
    serves the install pages (docs/installs.md), and with ``internal_api_key`` the internal
    API (``/api/v1/…``).
    """
    registry = registry or new_registry()
    readiness = readiness or Readiness()
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
    handlers = CallbackHandlers(
        processor,
        publisher,
        metrics,
        max_body_bytes=settings.callback_max_body_bytes,
        body_timeout_s=settings.http_body_timeout_s,
        wall_clock=wall_clock,
    )
    # The callback routes enforce their own, much smaller, body limit while reading.
    client_max_size = max(settings.callback_max_body_bytes, MAX_NOTIFICATION_BYTES)
    app = web.Application(middlewares=[error_middleware], client_max_size=client_max_size)
    add_security_headers(app)
    app.add_routes(handlers.routes())
    tokens = tokens or TokensClient(bus)
    auth = auth or AuthClient(bus)
    if data_key is not None:
        wecom = wecom or _owned_client(app, settings, registry)
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
            wall_clock=wall_clock,
        )
        app.add_routes(installs.routes())
        if serve_demo:
            app.add_routes(demo_routes())
    if internal_api_key is not None:
        internal_api = InternalApi(
            bus=bus,
            auth=auth,
            api_key=internal_api_key,
            body_timeout_s=settings.http_body_timeout_s,
        )
        app.add_routes(internal_api.routes())
    readiness.add("bus", lambda: bus.is_ready)
    add_health_routes(app, readiness, registry)
    return app


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
