"""The product's consumer queues: which queue of token_service, auth_service and the notifier
is bound to which event types, in one place the services and the gateway both declare.

The gateway declares them too (``PRODUCT_TOPOLOGY``), so that a callback it accepts before the
consuming service ever started (a first deploy, a fresh broker) waits in that service's queue
instead of falling through to ``wecom.events.unrouted`` (docs/bus.md, "First start").
"""

from __future__ import annotations

from typing import Final

from shared.bus.topology import (
    EVENTS_EXCHANGE,
    NOTIFY_EXCHANGE,
    NOTIFY_REQUEST_KEY,
    Binding,
    QueueSpec,
    Topology,
)
from shared.contracts import event_types

TOKEN_EVENTS_QUEUE: Final = "token_service.events"  # noqa: S105 -- a queue name
AUTH_EVENTS_QUEUE: Final = "auth_service.events"
NOTIFY_QUEUE: Final = "notifier.requests"

TOKEN_CONSUMED_EVENTS: Final = (
    event_types.COMMAND_SUITE_TICKET,
    event_types.AUTH_GRANTED,
    event_types.AUTH_CHANGED,
    event_types.AUTH_REVOKED,
)
AUTH_CONSUMED_EVENTS: Final = (
    event_types.COMMAND_CREATE_AUTH,
    event_types.COMMAND_CHANGE_AUTH,
    event_types.COMMAND_CANCEL_AUTH,
    event_types.COMMAND_RESET_PERMANENT_CODE,
    event_types.INSTALL_REDIRECT,
    event_types.DATA_EVENT_SUBSCRIBE,
    event_types.DATA_EVENT_UNSUBSCRIBE,
)

TOKEN_EVENTS_SPEC: Final = QueueSpec(
    TOKEN_EVENTS_QUEUE,
    bindings=tuple(Binding(EVENTS_EXCHANGE, key) for key in TOKEN_CONSUMED_EVENTS),
)
AUTH_EVENTS_SPEC: Final = QueueSpec(
    AUTH_EVENTS_QUEUE,
    bindings=tuple(Binding(EVENTS_EXCHANGE, key) for key in AUTH_CONSUMED_EVENTS),
)
# Retries serve two purposes: WeCom's transient failures (-1, network, 5xx, 45009) get a
# growing backoff, and sends held back by a send limit come back once a window has moved on.
# NOTIFY_MAX_ATTEMPTS bounds the WeCom calls; the queue's own bound is higher so limit waits
# do not use them up (on its last delivery a waiting request is republished, never dropped).
NOTIFY_QUEUE_SPEC: Final = QueueSpec(
    NOTIFY_QUEUE,
    bindings=(Binding(NOTIFY_EXCHANGE, NOTIFY_REQUEST_KEY),),
    retry_delays=(1.0, 2.0, 5.0, 15.0, 30.0, 60.0),
    max_attempts=12,
)

# Every queue a product service consumes from. Each declarer uses these same specs: RabbitMQ
# refuses a redeclaration with other arguments, so there must be exactly one definition.
PRODUCT_TOPOLOGY: Final = Topology(queues=(TOKEN_EVENTS_SPEC, AUTH_EVENTS_SPEC, NOTIFY_QUEUE_SPEC))
