"""The app's install QR code (protocol doc §8.11, developer.work.weixin.qq.com path/95430):
``service/get_app_qrcode`` answering a real, scannable QR code that encodes the simulator's
own install URL, and that URL, which installs the app as scanning the code in WeCom does.

A QR-code install is reported by ``create_auth`` carrying the code's ``State`` (§5.2); no
browser is sent to the app's install-complete page. WeCom serves the code only for a
released ("online") app and documents no specific error code for an unreleased one, so
``SIM_APP_RELEASED=false`` answers 48002 ("api forbidden"), the simulator's choice.
"""

from __future__ import annotations

import html
import io
import re
from typing import Final
from urllib.parse import urlencode

import segno
from aiohttp import web

from simulator.joins import LaterMembers, install_and_announce
from simulator.pusher import CallbackPusher
from simulator.state import SimulatorState, WeComError

GET_APP_QRCODE: Final = "/cgi-bin/service/get_app_qrcode"
INSTALL_PATH: Final = "/_sim/qr_install"
IMAGE_PATH: Final = "/_sim/app_qrcode.png"
# §8.11: the state tells install channels apart, a-zA-Z0-9, at most 32 bytes.
STATE_PATTERN: Final = re.compile(r"^[A-Za-z0-9]{0,32}\Z")
_MEMBER: Final = re.compile(r"^[A-Za-z0-9_.@-]{1,64}\Z")
NOT_RELEASED: Final = (48002, "api forbidden, the app is not online (released) yet")


def qr_png(data: str) -> bytes:
    """``data`` as a PNG QR code (error correction M, WeCom's small size of ~312 px)."""
    out = io.BytesIO()
    segno.make_qr(data, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()


class AppQrCode:
    """``get_app_qrcode`` and the install URL its code encodes."""

    def __init__(
        self,
        state: SimulatorState,
        pusher: CallbackPusher,
        later_members: LaterMembers,
        *,
        released: bool = True,
    ) -> None:
        self._state = state
        self._pusher = pusher
        self._later_members = later_members
        self._released = released

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(GET_APP_QRCODE, self.get_app_qrcode),
            web.get(IMAGE_PATH, self.image),
            web.get(INSTALL_PATH, self.install),
        ]

    def install_url(self, request: web.Request, app_state: str) -> str:
        """The URL the app's QR code encodes (the simulator's own address)."""
        query = {"suite_id": self._state.credentials.suite_id}
        if app_state:
            query["state"] = app_state
        return f"{request.scheme}://{request.host}{INSTALL_PATH}?{urlencode(query)}"

    async def get_app_qrcode(self, request: web.Request) -> web.Response:
        """§8.11: ``result_type`` 1 (default) answers the PNG, 2 a JSON ``qrcode`` URL."""
        self._state.count_call(GET_APP_QRCODE)
        try:
            app_state, result_type = await self._read_request(request)
        except WeComError as exc:
            return web.json_response({"errcode": exc.errcode, "errmsg": exc.errmsg})
        if result_type == 2:
            query = urlencode({"state": app_state} if app_state else {})
            url = f"{request.scheme}://{request.host}{IMAGE_PATH}" + (f"?{query}" if query else "")
            return web.json_response({"errcode": 0, "errmsg": "ok", "qrcode": url})
        return self._png(request, app_state)

    async def _read_request(self, request: web.Request) -> tuple[str, int]:
        """The request's ``state`` and ``result_type``, or the WeComError WeCom answers."""
        self._state.check_suite_token(request.query.get("suite_access_token", ""))
        body = await _json(request)
        if body.get("suite_id") != self._state.credentials.suite_id:
            raise WeComError(40013, "invalid suite_id")
        app_state = body.get("state") or ""
        if not isinstance(app_state, str) or not STATE_PATTERN.match(app_state):
            raise WeComError(40058, "invalid parameter state")
        result_type = body.get("result_type", 1)
        if not isinstance(result_type, int) or isinstance(result_type, bool):
            raise WeComError(40058, "invalid parameter result_type")
        if result_type not in (1, 2):
            raise WeComError(40058, "invalid parameter result_type")
        if not self._released:
            raise WeComError(*NOT_RELEASED)
        return app_state, result_type

    async def image(self, request: web.Request) -> web.Response:
        """The image a ``result_type`` 2 answer points to."""
        app_state = request.query.get("state", "")
        if not STATE_PATTERN.match(app_state) or not self._released:
            raise web.HTTPNotFound
        return self._png(request, app_state)

    def _png(self, request: web.Request, app_state: str) -> web.Response:
        return web.Response(
            body=qr_png(self.install_url(request, app_state)),
            content_type="image/png",
            headers={
                "Content-Disposition": 'attachment; filename="qrcode.png"',
                "Cache-Control": "no-cache, must-revalidate",
            },
        )

    async def install(self, request: web.Request) -> web.Response:
        """Scanning the code as member ``sim_user`` of ``sim_corp``: the app is installed and
        ``create_auth`` pushed with the code's ``State``; no redirect follows (as in WeCom)."""
        corp_id = request.query.get("sim_corp", "")
        user_id = request.query.get("sim_user", "")
        app_state = request.query.get("state", "")
        if not (_MEMBER.match(corp_id) and _MEMBER.match(user_id)):
            return _page(400, "请指定成员", "Scan as whom? Give ?sim_corp=&sim_user=.")
        if request.query.get("suite_id") != self._state.credentials.suite_id:
            return _page(404, "应用不存在", "No such app.")
        if not STATE_PATTERN.match(app_state) or not self._released:
            return _page(404, "二维码无效", "This QR code is not valid.")
        refusal = self._state.installs.refusal(corp_id, user_id, test=False)
        if refusal is not None:
            return _page(403, "无法安装", f"WeCom refuses this install: {refusal}")
        joined = await install_and_announce(
            self._state,
            self._pusher,
            self._later_members,
            corp_id,
            user_id,
            test=False,
            install_state=app_state or None,
        )
        return _page(
            200,
            "已添加应用",
            f"The app was added for {user_id} in {corp_id}; WeCom pushed {joined.pushed} "
            f"(delivered: {joined.delivered}).",
            data=joined.pushed,
        )


async def _json(request: web.Request) -> dict[str, object]:
    try:
        body = await request.json()
    except ValueError:
        raise WeComError(47001, "data format error") from None
    if not isinstance(body, dict):
        raise WeComError(47001, "data format error")
    return body


def _page(status: int, zh: str, en: str, *, data: str = "") -> web.Response:
    text = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>WeCom (sim)'
        f'</title></head><body data-pushed="{html.escape(data)}"><p>{html.escape(zh)}</p>'
        f'<p lang="en">{html.escape(en)}</p></body></html>'
    )
    return web.Response(text=text, status=status, content_type="text/html")
