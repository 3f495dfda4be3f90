"""The peer the gateway is measured against: the callback handler a Python developer would
write today with the libraries they would pick — aiohttp, wechatpy's ``WeChatCrypto`` and
``parse_message``, and aio-pika publishing each event with a publisher confirm.

Benchmark only: wechatpy is installed by ``make bench``, never by the product. It is written
as such a developer would (no replay cache, no receive-id policy, no normalisation beyond
what wechatpy does), so the comparison is the work our gateway does against the work the
usual stack does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aio_pika
from aiohttp import web
from wechatpy.enterprise import parse_message
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from gateway.settings import GatewaySettings
from shared.bus.topology import EVENTS_EXCHANGE

CONNECTION: web.AppKey[aio_pika.abc.AbstractRobustConnection] = web.AppKey("connection")
EXCHANGE: web.AppKey[aio_pika.abc.AbstractExchange] = web.AppKey("exchange")


def build_peer_app(settings: GatewaySettings, amqp_url: str) -> web.Application:
    """The peer's aiohttp application on ``amqp_url``'s broker."""
    # Individual developers' apps use an empty receive id (protocol doc §2.4).
    crypto = WeChatCrypto(
        settings.callback_token.get_secret_value(),
        settings.encoding_aes_key.get_secret_value(),
        "",
    )

    async def receive(request: web.Request) -> web.Response:
        query = request.query
        try:
            xml = crypto.decrypt_message(
                await request.read(),
                query["msg_signature"],
                query["timestamp"],
                query["nonce"],
            )
        except (InvalidSignatureException, KeyError):
            return web.Response(status=403)
        message = parse_message(xml)
        body = json.dumps(dict(message._data), ensure_ascii=False).encode()
        await request.app[EXCHANGE].publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(message.id),
            ),
            routing_key=f"data.message.{message.type}",
        )
        return web.Response(text="")

    async def broker(app: web.Application) -> AsyncIterator[None]:
        connection = await aio_pika.connect_robust(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        # The exchange our gateway declared (the benchmark runs it first): the same
        # routing, so both servers' events land in the same unrouted queue.
        app[EXCHANGE] = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
        app[CONNECTION] = connection
        yield
        await connection.close()

    app = web.Application()
    app.cleanup_ctx.append(broker)
    app.router.add_post("/wecom/data", receive)
    return app
