"""Wiring of the gateway: builds every collaborator from settings and the aiohttp app."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.domain import CallbackProcessor, ReceiveIdPolicy, ReplayCache
from gateway.handlers import CallbackHandlers
from gateway.metrics import GatewayMetrics
from gateway.publisher import EventPublisher
from gateway.settings import GatewaySettings
from shared.bus.abc import Bus
from shared.http import add_health_routes, error_middleware
from shared.lifecycle import Readiness
from shared.metrics import new_registry
from shared.wecom.crypto import CallbackCipher


def build_gateway_app(
    settings: GatewaySettings,
    bus: Bus,
    *,
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
    wall_clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The gateway's aiohttp application, publishing to ``bus`` (started by the caller)."""
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
        wall_clock=wall_clock,
    )
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.callback_max_body_bytes
    )
    app.add_routes(handlers.routes())
    readiness.add("bus", lambda: bus.is_ready)
    add_health_routes(app, readiness, registry)
    return app


def secrets_of(settings: GatewaySettings) -> list[str]:
    """Every configured secret, so the log redactor can mask it anywhere."""
    values = [settings.callback_token, settings.encoding_aes_key, settings.suite_secret]
    if settings.wecom_provider_secret is not None:
        values.append(settings.wecom_provider_secret)
    if settings.amqp_url is not None:
        values.append(settings.amqp_url)
    return [value.get_secret_value() for value in values]
