"""The ``/_sim/`` control API (JSON): what tests and benchmarks use to drive the simulator.

Errors use the services' shape (``{"error": {"code", "message"}}``), not WeCom's: this API
is ours, not WeCom's.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import InvalidRequest
from simulator.pusher import CallbackPusher, push_fresh_ticket
from simulator.state import Fault, SimulatorState


class FaultSpec(BaseModel):
    """Body of ``POST /_sim/faults``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # An API path, or one of the two browser pages (they take http_status and delays only).
    path: str = Field(pattern=r"^(/cgi-bin/|/connect/oauth2/authorize$|/3rdapp/install$)")
    errcode: int | None = None
    times: int | None = Field(1, ge=1, description="calls affected; null: until cleared")
    delay_ms: int = Field(0, ge=0, le=60_000)
    http_status: int | None = Field(None, ge=100, le=599)
    # "answer": the call is processed and only its answer is late (WeCom's failure mode);
    # "request": the delay comes before the call is read, as a slow network would.
    delay_at: Literal["answer", "request"] = "answer"


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    return body


Model = TypeVar("Model", bound=BaseModel)


async def read_model(request: web.Request, model: type[Model], what: str) -> Model:
    """The request body as ``model``; 400 naming the offending fields otherwise."""
    try:
        return model.model_validate(await _json_object(request))
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) or "body" for e in exc.errors())
        raise InvalidRequest(f"invalid {what}: {fields}") from None


class ControlApi:
    """Handlers of ``/_sim/``."""

    def __init__(self, state: SimulatorState, pusher: CallbackPusher) -> None:
        self._state = state
        self._pusher = pusher

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_sim/suite_ticket", self.suite_ticket),
            web.get("/_sim/calls", self.calls),
            web.get("/_sim/deliveries", self.deliveries),
            web.get("/_sim/sent", self.sent),
            web.post("/_sim/faults", self.add_fault),
            web.delete("/_sim/faults", self.clear_faults),
            web.post("/_sim/reset", self.reset),
        ]

    async def suite_ticket(self, _: web.Request) -> web.Response:
        """Push a fresh suite_ticket to the command URL now."""
        ticket, delivered = await push_fresh_ticket(self._state, self._pusher)
        return web.json_response({"ticket": ticket, "delivered": delivered})

    async def calls(self, _: web.Request) -> web.Response:
        """How many times each API path was called."""
        return web.json_response({"calls": dict(self._state.calls)})

    async def deliveries(self, _: web.Request) -> web.Response:
        """Every callback attempt, oldest first."""
        return web.json_response(
            {"deliveries": [attempt.to_json() for attempt in self._state.deliveries]}
        )

    async def sent(self, _: web.Request) -> web.Response:
        """Every accepted ``message/send``, oldest first, with each recipient's outcome."""
        return web.json_response(
            {"sent": [message.to_json() for message in self._state.outbox.sent]}
        )

    async def add_fault(self, request: web.Request) -> web.Response:
        """Arm a fault (errcode, HTTP status and/or delay) for the next calls of a path."""
        spec = await read_model(request, FaultSpec, "fault")
        if not spec.path.startswith("/cgi-bin/"):
            # A browser page answers a page, not an errcode: only an error status or a delay.
            if spec.errcode is not None and spec.http_status is None:
                raise InvalidRequest("invalid fault: a page takes http_status, not errcode alone")
            if spec.http_status is not None and spec.http_status < 400:
                raise InvalidRequest("invalid fault: a page's http_status must be 400-599")
        self._state.add_fault(Fault(**spec.model_dump()))
        return web.json_response({"fault": spec.model_dump()}, status=201)

    async def clear_faults(self, _: web.Request) -> web.Response:
        """Disarm every fault."""
        return web.json_response({"cleared": self._state.clear_faults()})

    async def reset(self, _: web.Request) -> web.Response:
        """Forget every credential, install, sent message, media, call count and fault."""
        self._state.reset()
        return web.json_response({"reset": True})
