"""auth_service's side of member sessions on a real RabbitMQ: ``rpc.auth`` ``end_session``
remembers a sign-out, ``session`` reports it and the corp's installation as it is now."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from shared.contracts import AuthRequest, SessionStatus
from tests.support.installs import InstallStack, install_stack

pytestmark = pytest.mark.integration

CORP = "wwsessioncorp"


async def status_of(stack: InstallStack, session_id: str) -> SessionStatus:
    """The ``rpc.auth`` answer to ``op: session`` for ``session_id`` in :data:`CORP`."""
    body = await stack.auth.request(AuthRequest(op="session", corp_id=CORP, session_id=session_id))
    return SessionStatus.model_validate(body)


async def test_a_sign_out_is_remembered_and_an_uninstall_ends_every_session(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """end_session ends that session only; revoking the install makes every session over."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        answer = await stack.install(CORP, "alice", via="callback")
        assert answer["delivered"] is True
        await stack.installation(CORP, status="active")
        signed_out, other = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        assert (await status_of(stack, signed_out)).over is False

        ended = await stack.auth.request(
            AuthRequest(op="end_session", session_id=signed_out, expires_at=int(time.time()) + 600)
        )
        assert ended == {"ended": True}
        after = await status_of(stack, signed_out)
        assert (after.ended, after.over) == (True, True)
        assert (await status_of(stack, other)).over is False

        status, _ = await stack.sim.call("POST", "/_sim/uninstall", body={"corp_id": CORP})
        assert status == 200
        await stack.installation(CORP, status="revoked")
        revoked = await status_of(stack, other)
        assert revoked.ended is False
        assert revoked.installation is not None
        assert revoked.installation.status == "revoked"
        assert revoked.over is True


async def test_a_corp_auth_service_does_not_know_yet_keeps_the_session(
    module_amqp_url: str, tmp_path: Path
) -> None:
    """No installation record (an install still being processed) does not end a session."""
    async with install_stack(module_amqp_url, tmp_path) as stack:
        found = await status_of(stack, secrets.token_urlsafe(18))
        assert found.installation is None
        assert found.over is False
