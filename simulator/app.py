"""Wiring of the simulator: state, WeCom API, control API and callback pusher in one app."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from shared.http import add_health_routes, error_middleware
from shared.lifecycle import Readiness
from shared.metrics import new_registry
from shared.wecom.crypto import CallbackCipher
from simulator.admin_login import AdminLogin
from simulator.api import WeComApi
from simulator.app_qrcode import AppQrCode
from simulator.control import ControlApi
from simulator.control_data import DataControl
from simulator.control_installs import InstallControl
from simulator.pages import Pages
from simulator.persistence import StatePersistence
from simulator.pusher import CallbackPusher, DeliveryPolicy, run_ticket_schedule
from simulator.settings import SimulatorSettings
from simulator.state import Clock, Credentials, Lifetimes, SimulatorState

STATE_KEY = web.AppKey("simulator_state", SimulatorState)
"""The app's state, for the composition root and tests that inspect it directly."""


def build_state(settings: SimulatorSettings, clock: Clock) -> SimulatorState:
    provider_secret = settings.provider_secret
    return SimulatorState(
        Credentials(
            suite_id=settings.suite_id,
            suite_secret=settings.suite_secret.get_secret_value(),
            provider_corpid=settings.provider_corpid,
            provider_secret=None if provider_secret is None else provider_secret.get_secret_value(),
        ),
        Lifetimes(
            suite_ticket=settings.sim_ticket_ttl_s,
            token=settings.sim_token_ttl_s,
            pre_auth_code=settings.sim_pre_auth_code_ttl_s,
            auth_code=settings.sim_auth_code_ttl_s,
            oauth_code=settings.sim_oauth_code_ttl_s,
        ),
        clock=clock,
        seed=settings.sim_seed,
        limits=settings.install_limits,
        send_limits=settings.send_limits,
    )


def build_simulator_app(
    settings: SimulatorSettings,
    *,
    clock: Clock = time.time,
    registry: CollectorRegistry | None = None,
    readiness: Readiness | None = None,
) -> web.Application:
    """The simulator's aiohttp app; the ticket schedule runs while the app is started."""
    state = build_state(settings, clock)
    persistence = None
    if settings.sim_state_file is not None:
        persistence = StatePersistence(state, settings.sim_state_file)
        persistence.load()
    pusher = CallbackPusher(
        state,
        cipher=CallbackCipher(settings.encoding_aes_key.get_secret_value()),
        token=settings.callback_token.get_secret_value(),
        suite_id=settings.suite_id,
        urls={"command": settings.sim_command_url, "data": settings.sim_data_url},
        policy=DeliveryPolicy(
            timeout_s=settings.sim_callback_timeout_s,
            retries=settings.sim_callback_retries,
            retry_delay_s=settings.sim_callback_retry_delay_s,
            install_timeout_s=settings.sim_install_callback_timeout_s,
        ),
        clock=clock,
    )

    async def callbacks(_: web.Application) -> AsyncIterator[None]:
        # The pusher's HTTP session and the ticket schedule live exactly as long as the app.
        await pusher.open()
        schedule = asyncio.create_task(
            run_ticket_schedule(
                state,
                pusher,
                interval_s=settings.sim_ticket_interval_s,
                push_at_start=settings.sim_ticket_on_start,
            ),
            name="suite-ticket-schedule",
        )
        try:
            yield
        finally:
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedule
            await pusher.close()

    app = web.Application(
        middlewares=[error_middleware] + ([] if persistence is None else [persistence.middleware])
    )
    app[STATE_KEY] = state
    api = WeComApi(
        state,
        ip_allowlist=settings.ip_allowlist,
        image_max_bytes=settings.sim_media_image_max_bytes,
    )
    app.add_routes(api.routes())
    app.add_routes(
        Pages(
            state,
            pusher,
            default_member=(settings.sim_default_corp, settings.sim_default_user),
            auto_install=settings.sim_oauth_auto_install,
            install_redirect_url=settings.sim_install_redirect_url,
            trusted_domain=settings.sim_trusted_domain,
            later_members=settings.sim_later_members,
        ).routes()
    )
    app.add_routes(ControlApi(state, pusher).routes())
    app.add_routes(
        InstallControl(
            state, pusher, settings.sim_install_redirect_url, settings.sim_later_members
        ).routes()
    )
    app.add_routes(DataControl(state, pusher).routes())
    app.add_routes(AdminLogin(state, settings.sim_business_settings_url).routes())
    app.add_routes(
        AppQrCode(
            state, pusher, settings.sim_later_members, released=settings.sim_app_released
        ).routes()
    )
    if persistence is not None:
        # Before the callbacks' context, so its cleanup (the last save) runs after theirs.
        app.cleanup_ctx.append(persistence.lifetime)
    app.cleanup_ctx.append(callbacks)
    add_health_routes(app, readiness or Readiness(), registry or new_registry())
    return app
