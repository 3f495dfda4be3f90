"""Which exceptions of the AMQP stack mean "the broker is away": the one list every ``except``
of the RabbitMQ bus catches before it raises ``BusError``.

Not aio-pika's ``CONNECTION_EXCEPTIONS``: that holds ``RuntimeError`` and
``StopAsyncIteration``, so a bug in our own code (or a double settle, aio-pika's
``MessageProcessError``) would come out as a retryable ``BusError`` instead of as itself.
"""

from __future__ import annotations

from typing import Final

from aio_pika.abc import AbstractConnection
from aiormq.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AuthenticationError,
    ChannelInvalidStateError,
    ProbableAuthenticationError,
    ProtocolSyntaxError,
)
from pamqp.exceptions import PAMQPException

BROKER_AWAY: Final[tuple[type[Exception], ...]] = (
    AMQPConnectionError,  # refused, closed, lost heartbeat, authentication failed
    AMQPChannelError,  # the broker closed the channel (a restart, a missing queue)
    ChannelInvalidStateError,  # a RuntimeError, but raised only on a closed or unopened channel
    ConnectionError,  # the socket: refused, reset, aborted
    TimeoutError,  # asyncio's too, since 3.11; a broker that does not answer
    OSError,  # the network: unreachable, name resolution
    ProtocolSyntaxError,  # a frame from the broker that aiormq cannot read
    PAMQPException,  # the same, from pamqp's decoder
)
"""Caught as "the broker is away" throughout ``shared.bus``; anything else surfaces as itself."""

AUTHENTICATION_FAILED: Final[tuple[type[Exception], ...]] = (
    AuthenticationError,  # the broker refused the credentials (ACCESS_REFUSED)
    ProbableAuthenticationError,  # it closed the connection during the handshake
)
"""Among :data:`BROKER_AWAY`: the broker answered but refused the user name or password. Still
retried (the operator may fix the user while the process waits), but logged as an error."""

CHANNEL_OPEN_ERRORS: Final[tuple[type[Exception], ...]] = (*BROKER_AWAY, RuntimeError)
"""What opening a channel raises when the connection drops under it; catch these, then let
:func:`is_broker_away` tell the broker's absence from a bug."""


def is_authentication_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or the error it was raised from) is the broker refusing to sign in."""
    while exc is not None:
        if isinstance(exc, AUTHENTICATION_FAILED):
            return True
        exc = exc.__cause__
    return False


def is_broker_away(exc: BaseException, connection: AbstractConnection | None) -> bool:
    """Whether ``exc``, raised while opening a channel on ``connection``, means the broker is away.

    An error of :data:`BROKER_AWAY` always does. aio-pika and aiormq also raise a bare
    ``RuntimeError`` ("… closed") when the connection drops while a channel is being opened;
    that one counts only if the connection is indeed down at that moment, so that the same
    error with the connection up (a bug) still surfaces as itself.
    """
    if isinstance(exc, BROKER_AWAY):
        return True
    if type(exc) is not RuntimeError:
        return False
    return connection is None or connection.is_closed or not connection.connected.is_set()
