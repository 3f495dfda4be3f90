"""The two browser pages WeCom serves: OAuth authorise (§9.1) and the install page (§8.4).

Both act for the member named by ``?sim_corp=``/``?sim_user=`` (or the configured default
member) and answer a 302 back to the app, or a small HTML page saying what is wrong: a
browser is on the other end, not an API client, so errors are pages, not JSON.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from yarl import URL

from simulator.joins import LaterMembers, install_and_announce
from simulator.oauth import SCOPES
from simulator.pusher import CallbackPusher
from simulator.state import SimulatorState, WeComError
from simulator.state_types import expires_in

AUTHORIZE = "/connect/oauth2/authorize"
INSTALL = "/3rdapp/install"
AutoInstall = Literal["off", "default", "on"]
# §9.1/§8.4: state is [a-zA-Z0-9], at most 128 bytes.
STATE = re.compile(r"^[a-zA-Z0-9]{0,128}\Z")
MEMBER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# The fragment WeCom's links end with; a browser never sends it, but a client that encodes
# the whole link may, and it then sticks to the last parameter.
WECHAT_REDIRECT = "#wechat_redirect"
LIMIT_TEXT = {
    "corp_limit": "at most 10 enterprises may install an individual developer's app",
    "user_limit": "at most 100 users may install an individual developer's app",
    "test_account_limit": "at most 10 test accounts may hold the test app at a time",
    "test_and_released_exclusive": "one account cannot hold both the test and the released app",
}


class PageError(Exception):
    """A refusal shown to the browser as an HTML page with this status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail


def error_page(error: PageError) -> web.Response:
    title, detail = html.escape(error.title), html.escape(error.detail)
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><h1>{title}</h1><p>{detail}</p></body></html>"
    )
    return web.Response(text=text, status=error.status, content_type="text/html")


def _found(location: URL) -> web.Response:
    return web.Response(status=302, headers={"Location": str(location)})


def _param(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    return value.removesuffix(WECHAT_REDIRECT)


def _redirect_uri(request: web.Request) -> URL:
    raw = _param(request, "redirect_uri")
    url = URL(raw) if raw else None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise PageError(400, "Invalid redirect_uri", "redirect_uri must be an absolute http(s) URL")
    return url.with_fragment(None)


def trusted(url: URL, domain: str) -> bool:
    """Whether ``url`` is under the trusted domain ``host[:port]`` (§9.1: exact, port too).

    A domain without a port stands for the scheme's default port.
    """
    allowed = URL(f"{url.scheme}://{domain}")
    return (url.host or "").lower() == (allowed.host or "").lower() and url.port == allowed.port


def _state(request: web.Request) -> str:
    state = _param(request, "state")
    if not STATE.match(state):
        raise PageError(400, "Invalid state", "state must be at most 128 letters or digits")
    return state


class Pages:
    """Handlers of the authorise and install pages."""

    def __init__(
        self,
        state: SimulatorState,
        pusher: CallbackPusher,
        *,
        default_member: tuple[str, str],
        auto_install: AutoInstall,
        install_redirect_url: str,
        trusted_domain: str = "",
        later_members: LaterMembers = "create_auth",
    ) -> None:
        self._state = state
        self._pusher = pusher
        self._default = default_member
        self._auto_install = auto_install
        # §8.4: WeCom checks the redirect against the install-complete callback domain.
        self._install_host = URL(install_redirect_url).host
        # §9.1: OAuth redirects only to the app's trusted domain; empty: not checked.
        self._trusted_domain = trusted_domain
        self._later_members = later_members

    def routes(self) -> list[web.RouteDef]:
        return [web.get(AUTHORIZE, self.authorize), web.get(INSTALL, self.install)]

    def _member(self, request: web.Request) -> tuple[str, str]:
        corp_id = _param(request, "sim_corp") or self._default[0]
        user_id = _param(request, "sim_user") or self._default[1]
        if not (MEMBER_ID.match(corp_id) and MEMBER_ID.match(user_id)):
            raise PageError(400, "Invalid member", "sim_corp and sim_user must be short ids")
        return corp_id, user_id

    def _check_suite(self, given: str, name: str) -> None:
        if given != self._state.credentials.suite_id:
            raise PageError(400, f"Invalid {name}", f"{name} must be the app's SuiteID")

    def _refuse_over_limit(self, corp_id: str, user_id: str, *, test: bool) -> None:
        reason = self._state.installs.refusal(corp_id, user_id, test=test)
        if reason is not None:
            raise PageError(403, "Install refused", f"{reason}: {LIMIT_TEXT[reason]}")

    async def _with_fault(
        self, path: str, answer: Callable[[], Awaitable[web.Response]]
    ) -> web.Response:
        """Count the visit and apply a fault armed for the page (``POST /_sim/faults``).

        An ``http_status`` fault answers that status with an error page after ``delay_ms``,
        without serving the page; a pure delay comes before the page is served
        (``delay_at=request``) or after (``answer``, the default: the effect, e.g. an
        install, exists while the browser still waits), as for the API.
        """
        self._state.count_call(path)
        fault = self._state.take_fault(path)
        late_by_s = 0.0
        if fault is not None:
            if fault.http_status is not None or fault.delay_at == "request":
                await asyncio.sleep(fault.delay_ms / 1000)
                if fault.http_status is not None:
                    return error_page(
                        PageError(
                            fault.http_status,
                            "Injected fault",
                            f"HTTP {fault.http_status} injected through /_sim/faults",
                        )
                    )
            else:
                late_by_s = fault.delay_ms / 1000
        response = await answer()
        if late_by_s > 0:
            await asyncio.sleep(late_by_s)
        return response

    async def authorize(self, request: web.Request) -> web.Response:
        """§9.1: redirect to ``redirect_uri?code=&state=`` for a member who can see the app."""

        async def answer() -> web.Response:
            try:
                return _found(await self._authorize(request))
            except PageError as exc:
                return error_page(exc)

        return await self._with_fault(AUTHORIZE, answer)

    async def _authorize(self, request: web.Request) -> URL:
        self._check_suite(_param(request, "appid"), "appid")
        redirect_uri = _redirect_uri(request)
        if self._trusted_domain and not trusted(redirect_uri, self._trusted_domain):
            raise PageError(
                400,
                "redirect_uri not trusted",
                f"50001 redirect_url domain not a trusted domain: the app's trusted domain "
                f"is {self._trusted_domain}",
            )
        if _param(request, "response_type") != "code":
            raise PageError(400, "Invalid response_type", "response_type must be code")
        scope = _param(request, "scope")
        if scope not in SCOPES:
            raise PageError(400, "Invalid scope", f"scope must be one of {sorted(SCOPES)}")
        state = _state(request)
        corp_id, user_id = self._member(request)
        await self._ensure_installed(corp_id, user_id)
        code = self._state.oauth.issue_code(corp_id, user_id, scope)
        return redirect_uri.update_query(code=code, state=state)

    async def _ensure_installed(self, corp_id: str, user_id: str) -> None:
        """Only members in the visible range sign in; auto-install as configured."""
        corp = self._state.installs.corps.get(corp_id)
        member = None if corp is None else corp.members.get(user_id)
        if member is not None and member.installed:
            return
        is_default = (corp_id, user_id) == self._default
        if self._auto_install == "on" or (self._auto_install == "default" and is_default):
            self._refuse_over_limit(corp_id, user_id, test=False)
            # The normal install path: create_auth with an auth code (§5.2), or subscribe for a
            # later member (§15 q4), awaited so the app knows the install before it exchanges
            # the OAuth code.
            await install_and_announce(
                self._state,
                self._pusher,
                self._later_members,
                corp_id,
                user_id,
                test=False,
                install_state=None,
            )
            return
        raise PageError(
            403,
            "Not in the app's visible range",
            f"member {user_id} of {corp_id} has not installed the app (50002)",
        )

    async def install(self, request: web.Request) -> web.Response:
        """§8.4: install for the member, then ``redirect_uri?auth_code=&expires_in=&state=``."""

        async def answer() -> web.Response:
            try:
                return _found(self._install_location(request))
            except PageError as exc:
                return error_page(exc)

        return await self._with_fault(INSTALL, answer)

    def _install_location(self, request: web.Request) -> URL:
        self._check_suite(_param(request, "suite_id"), "suite_id")
        redirect_uri = _redirect_uri(request)
        if redirect_uri.host != self._install_host:
            domain = self._install_host
            raise PageError(
                400, "Invalid redirect_uri", f"redirect_uri must be under the domain {domain}"
            )
        state = _state(request)
        corp_id, user_id = self._member(request)
        code = self._install(_param(request, "pre_auth_code"), corp_id, user_id, state)
        lifetime = str(expires_in(self._state.lifetimes.auth_code))
        return redirect_uri.update_query(auth_code=code, expires_in=lifetime, state=state)

    def _install(self, pre_auth_code: str, corp_id: str, user_id: str, state: str) -> str:
        try:
            auth_type = self._state.take_pre_auth_code(pre_auth_code)
        except WeComError as exc:
            raise PageError(
                400,
                "Invalid pre_auth_code",
                f"{exc.errcode} {exc.errmsg}: unknown, used or expired",
            ) from None
        test = auth_type == 1  # set_session_info auth_type 1 = test install (§8.3)
        self._refuse_over_limit(corp_id, user_id, test=test)
        return self._state.installs.install(corp_id, user_id, test=test, state=state or None)
