"""WeCom's server API at its real paths, with its JSON shapes and error codes.

Every answer is HTTP 200 with ``errcode``/``errmsg`` (protocol doc §1.2) — except a success
of the calls whose doc pages say they answer ``errcode`` only on failure — unless a fault
injected through ``/_sim/faults`` asks for another status. The checks run in WeCom's order as
far as the protocol doc tells it: injected fault, caller IP (60020, when an allow-list is
set), token in the query string (41001), HTTP method (40058), JSON body, then the call's own
credential checks.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import BodyPartReader, web

from simulator.api_installs import InstallApi
from simulator.api_messages import MessageApi
from simulator.api_oauth import OAuthApi
from simulator.calls import ApiCall, Endpoint, JsonObject, UploadedFile
from simulator.state import Fault, SimulatorState, WeComError
from simulator.state_types import expires_in


def _ok(endpoint: Endpoint, fields: JsonObject) -> JsonObject:
    if endpoint.ok_errmsg is None:
        return fields
    return {"errcode": 0, "errmsg": endpoint.ok_errmsg, **fields}


def _error(errcode: int, errmsg: str) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg})


class WeComApi:
    """The ``/cgi-bin/`` handlers of this slice, over :class:`SimulatorState`."""

    def __init__(
        self,
        state: SimulatorState,
        *,
        ip_allowlist: Sequence[str] = (),
        image_max_bytes: int | None = None,
    ) -> None:
        self._state = state
        self._ip_allowlist = tuple(ip_allowlist)
        # Operations still running for a client that went away (see _processed).
        self._running: set[asyncio.Future[JsonObject]] = set()
        self._endpoints = [
            Endpoint(
                "/cgi-bin/service/get_suite_token",
                "POST",
                None,
                self.get_suite_token,
                ok_errmsg=None,
            ),
            Endpoint(
                "/cgi-bin/service/get_pre_auth_code",
                "GET",
                "suite_access_token",
                self.get_pre_auth_code,
            ),
            Endpoint("/cgi-bin/service/get_provider_token", "POST", None, self.get_provider_token),
            *InstallApi(state).endpoints(),
            *OAuthApi(state).endpoints(),
            *MessageApi(state, image_max_bytes=image_max_bytes).endpoints(),
        ]

    @property
    def paths(self) -> list[str]:
        return [endpoint.path for endpoint in self._endpoints]

    def routes(self) -> list[web.RouteDef]:
        # Every method reaches the handler, so a wrong one gets WeCom's errcode, not a 405.
        return [web.route("*", e.path, self._handler(e)) for e in self._endpoints]

    def _handler(self, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._dispatch(endpoint, request)

        return handle

    async def _dispatch(self, endpoint: Endpoint, request: web.Request) -> web.Response:
        self._state.count_call(endpoint.path)
        fault = self._state.take_fault(endpoint.path)
        late_by_s = 0.0
        if fault is not None:
            if fault.replaces_answer or fault.delay_at == "request":
                faulted = await _apply_fault(fault)
                if faulted is not None:
                    return faulted
            else:
                late_by_s = fault.delay_ms / 1000
        answer = await self._answer(endpoint, request)
        if late_by_s > 0:
            # Processed, answer late: a client that gives up meanwhile still got the effect.
            await asyncio.sleep(late_by_s)
        return answer

    async def _answer(self, endpoint: Endpoint, request: web.Request) -> web.Response:
        refused_ip = self._refused_ip(request)
        if refused_ip is not None:
            # WeCom's 60020 names the caller's address so the operator can whitelist it.
            return _error(
                60020, f"not allow to access from your ip, hint: [sim], from ip: {refused_ip}"
            )
        if endpoint.token is not None and not request.query.get(endpoint.token):
            # WeCom reads tokens from the query string only: one sent in the body is missing.
            return _error(41001, f"{endpoint.token} missing")
        if request.method != endpoint.method:
            # Protocol doc §1.2: the wrong method surfaces as a misleading parameter error.
            return _error(40058, f"invalid request method, {endpoint.method} required")
        try:
            call = await _parse_call(endpoint, request)
            result = await self._processed(endpoint.operation(call))
        except WeComError as exc:
            return web.json_response({"errcode": exc.errcode, "errmsg": exc.errmsg, **exc.fields})
        return web.json_response(_ok(endpoint, result))

    async def _processed(self, operation: Awaitable[JsonObject]) -> JsonObject:
        """Run a call's operation to the end even if the client goes away meanwhile.

        aiohttp may cancel a handler when its client disconnects; WeCom has then still done
        what was asked (a message sent, a code used up), so the operation is shielded.
        """
        task = asyncio.ensure_future(operation)
        self._running.add(task)
        task.add_done_callback(_forget(self._running))
        return await asyncio.shield(task)

    def _refused_ip(self, request: web.Request) -> str | None:
        """The peer's address when an allow-list is set and does not hold it."""
        if not self._ip_allowlist:
            return None
        peer = request.remote or ""
        if any(fnmatch.fnmatchcase(peer, allowed) for allowed in self._ip_allowlist):
            return None
        return peer

    # -- operations ---------------------------------------------------------------------

    async def get_suite_token(self, call: ApiCall) -> JsonObject:
        """§8.1: suite_id + suite_secret + the latest suite_ticket → suite_access_token."""
        body = call.body
        issued = self._state.get_suite_token(
            body.get("suite_id"), body.get("suite_secret"), body.get("suite_ticket")
        )
        return {
            "suite_access_token": issued.value,
            "expires_in": expires_in(self._state.lifetimes.token),
        }

    async def get_pre_auth_code(self, call: ApiCall) -> JsonObject:
        """§8.2: a pre_auth_code for one install attempt."""
        self._state.check_suite_token(call.query["suite_access_token"])
        issued = self._state.issue_pre_auth_code()
        lifetime = self._state.lifetimes.pre_auth_code
        return {"pre_auth_code": issued.value, "expires_in": expires_in(lifetime)}

    async def get_provider_token(self, call: ApiCall) -> JsonObject:
        """§8.10: provider corpid + provider_secret → provider_access_token."""
        body = call.body
        issued = self._state.get_provider_token(body.get("corpid"), body.get("provider_secret"))
        return {
            "provider_access_token": issued.value,
            "expires_in": expires_in(self._state.lifetimes.token),
        }


def _forget(
    running: set[asyncio.Future[JsonObject]],
) -> Callable[[asyncio.Future[JsonObject]], None]:
    def done(task: asyncio.Future[JsonObject]) -> None:
        running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: nobody may be awaiting a refusal any more

    return done


async def _apply_fault(fault: Fault) -> web.Response | None:
    """Wait the injected delay (before the call); the faulty answer, or None to go on."""
    if fault.delay_ms > 0:
        await asyncio.sleep(fault.delay_ms / 1000)
    errcode = -1 if fault.errcode is None else fault.errcode
    if fault.http_status is not None:
        return web.json_response(
            {"errcode": errcode, "errmsg": "injected fault"}, status=fault.http_status
        )
    if fault.errcode is not None:
        return _error(fault.errcode, "injected fault")
    return None


async def _parse_call(endpoint: Endpoint, request: web.Request) -> ApiCall:
    query = dict(request.query)
    if endpoint.method != "POST":
        return ApiCall(query, {})
    if endpoint.body == "multipart":
        return ApiCall(query, {}, await _multipart_files(request))
    return ApiCall(query, await _json_body(request))


async def _multipart_files(request: web.Request) -> dict[str, UploadedFile]:
    """The file parts of a multipart body, measured but not kept (nobody reads them back)."""
    if not request.content_type.startswith("multipart/"):
        return {}
    files: dict[str, UploadedFile] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        size = 0
        while chunk := await part.read_chunk():
            size += len(chunk)
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        files[part.name] = UploadedFile(part.filename or "", content_type, size)
    return files


async def _json_body(request: web.Request) -> JsonObject:
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise WeComError(40058, "invalid parameter, Warning: wrong json format.") from None
    if not isinstance(body, dict):
        raise WeComError(40058, "invalid parameter, a JSON object is required")
    return body
