"""The WeCom calls of an install: auth code → permanent code (v1 or v2), and auth info
(protocol doc §8.5–§8.7). Suite tokens come from token_service, with the stale-token retry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from auth_service.domain import AuthInfo
from shared.tokens import TokensClient
from shared.wecom.api import WeComClient, WeComUnavailable, with_token

__all__ = ["ApiVersion", "AuthApi", "AuthInfo", "Exchanged", "parse_auth_info"]

ApiVersion = Literal["v1", "v2"]


@dataclass(frozen=True)
class Exchanged:
    """The result of exchanging an auth code."""

    corp_id: str
    permanent_code: str
    state: str | None
    installer_user_id: str | None
    installer_open_userid: str | None
    info: AuthInfo
    auth_type: int | None = None  # undocumented auth_corp_info.auth_type (§13.4): logged only
    # False after a v2 exchange until get_auth_info filled ``info`` (agent id, members).
    complete: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "corp_id": self.corp_id,
            "permanent_code": self.permanent_code,
            "state": self.state,
            "installer_user_id": self.installer_user_id,
            "installer_open_userid": self.installer_open_userid,
            "auth_type": self.auth_type,
            "complete": self.complete,
            "info": {
                "corp_name": self.info.corp_name,
                "agent_id": self.info.agent_id,
                "auth_mode": self.info.auth_mode,
                "members": list(self.info.members),
                "edition": self.info.edition,
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Exchanged:
        info = doc["info"]
        return cls(
            corp_id=doc["corp_id"],
            permanent_code=doc["permanent_code"],
            state=doc.get("state"),
            installer_user_id=doc.get("installer_user_id"),
            installer_open_userid=doc.get("installer_open_userid"),
            auth_type=doc.get("auth_type"),
            complete=bool(doc.get("complete", True)),
            info=AuthInfo(
                corp_name=info.get("corp_name"),
                agent_id=info.get("agent_id"),
                auth_mode=info.get("auth_mode"),
                members=tuple(info.get("members", ())),
                edition=info.get("edition"),
            ),
        )


def parse_auth_info(answer: dict[str, Any]) -> AuthInfo:
    """``auth_corp_info``, ``auth_info.agent[0]`` and ``edition_info`` of an answer.

    New-style apps have exactly one agent (§8.5); under member authorisation its
    ``privilege.allow_user`` lists the members who authorised.
    """
    corp = answer.get("auth_corp_info") or {}
    agents = (answer.get("auth_info") or {}).get("agent") or []
    agent = agents[0] if agents and isinstance(agents[0], dict) else {}
    privilege = agent.get("privilege") or {}
    allow_user = privilege.get("allow_user") or []
    agent_id = agent.get("agentid")
    auth_mode = agent.get("auth_mode")
    return AuthInfo(
        corp_name=corp.get("corp_name"),
        agent_id=agent_id if isinstance(agent_id, int) else None,
        auth_mode=auth_mode if isinstance(auth_mode, int) else None,
        members=tuple(sorted(str(user) for user in allow_user if user)),
        edition=answer.get("edition_info"),
    )


class AuthApi:
    """WeCom's install calls for one suite."""

    def __init__(
        self, client: WeComClient, tokens: TokensClient, *, version: ApiVersion = "v2"
    ) -> None:
        self._client = client
        self._tokens = tokens
        self._version = version

    async def _service(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async def call(suite_token: str) -> dict[str, Any]:
            return await self._client.post(
                path, params={"suite_access_token": suite_token}, body=body
            )

        return await with_token(self._tokens.source("suite"), call)

    async def exchange(self, auth_code: str) -> Exchanged:
        """Exchange ``auth_code`` (single use) for the permanent code.

        Only the one call that uses up the code happens here, so the caller can store its
        result before anything else can fail. v2 (the default; "recommended, the old one can
        time out", §8.6) answers without the agent: the result is not ``complete`` until
        :meth:`complete` has called ``get_auth_info``. v1 answers with everything.
        """
        prefix = "/cgi-bin/service/v2" if self._version == "v2" else "/cgi-bin/service"
        answer = await self._service(f"{prefix}/get_permanent_code", {"auth_code": auth_code})
        corp = answer.get("auth_corp_info") or {}
        corp_id, code = corp.get("corpid"), answer.get("permanent_code")
        if not isinstance(corp_id, str) or not corp_id or not isinstance(code, str) or not code:
            raise WeComUnavailable(
                "get_permanent_code answered without corpid or permanent_code",
                maybe_delivered=True,
            )
        user = answer.get("auth_user_info") or {}
        complete = self._version == "v1"
        info = parse_auth_info(answer) if complete else AuthInfo(corp.get("corp_name"), None, None)
        auth_type = corp.get("auth_type")
        return Exchanged(
            corp_id=corp_id,
            permanent_code=code,
            state=answer.get("state") or None,
            installer_user_id=user.get("userid") or None,
            installer_open_userid=user.get("open_userid") or None,
            info=info,
            auth_type=auth_type if isinstance(auth_type, int) else None,
            complete=complete,
        )

    async def complete(self, exchanged: Exchanged) -> Exchanged:
        """``exchanged`` with the grant's agent and members (``get_auth_info``) if missing."""
        if exchanged.complete:
            return exchanged
        info = await self.auth_info(exchanged.corp_id, exchanged.permanent_code)
        if info.corp_name is None:
            info = replace(info, corp_name=exchanged.info.corp_name)
        return replace(exchanged, info=info, complete=True)

    async def auth_info(self, corp_id: str, permanent_code: str) -> AuthInfo:
        prefix = "/cgi-bin/service/v2" if self._version == "v2" else "/cgi-bin/service"
        answer = await self._service(
            f"{prefix}/get_auth_info", {"auth_corpid": corp_id, "permanent_code": permanent_code}
        )
        return parse_auth_info(answer)
