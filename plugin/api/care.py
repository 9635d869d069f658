"""Care's API: a member's suggestions (and acting on them), and the store's care report.

| route | scopes |
| --- | --- |
| `GET /v1/members/{cid}/suggestions` | channel, marketer, member token (its own) |
| `POST /v1/members/{cid}/suggestions/{sid}/dismiss`, `/acted` | channel, marketer, member token (its own) |
| `GET /v1/care/report` | marketer |
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from loyalty import care_actions, programs
from loyalty.care_actions import CareReport, SuggestionList
from loyalty.repository import Connection
from loyalty.stores import Principal, Scope
from plugin.auth import OWN_MEMBER, requires
from plugin.runtime import Runtime

_WRITERS = requires(Scope.channel, Scope.app, Scope.marketer)


class SuggestionsController(Controller):
    path = "/v1/members/{cid:str}/suggestions"
    opt = {OWN_MEMBER: True}  # noqa: RUF012
    tags = ["members"]  # noqa: RUF012

    @get("/", opt=requires(Scope.channel, Scope.app, Scope.marketer), summary="A member's suggestions")
    async def list_suggestions(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
    ) -> SuggestionList:
        """Proactive suggestions and gifts (replenishment due, tier within reach, points expiring,
        recommended next, birthday …) delivered and neither acted on nor expired, newest first."""
        return await care_actions.open_suggestions(
            conn, store_id=principal.store_id, customer_id=cid, now=runtime.clock(), limit=limit
        )

    @post("/{suggestion_id:str}/dismiss", status_code=HTTP_204_NO_CONTENT, opt=_WRITERS, summary="Dismiss")
    async def dismiss(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        suggestion_id: FromPath[str],
    ) -> None:
        """The member is not interested: the suggestion leaves their list. Idempotent; 404 if unknown."""
        await care_actions.act(
            conn,
            store_id=principal.store_id,
            customer_id=cid,
            suggestion_id=suggestion_id,
            now=runtime.clock(),
            outcome="dismissed",
        )

    @post("/{suggestion_id:str}/acted", status_code=HTTP_204_NO_CONTENT, opt=_WRITERS, summary="Acted on")
    async def acted(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        suggestion_id: FromPath[str],
    ) -> None:
        """The member took it up: the suggestion leaves their list. Idempotent; 404 if unknown."""
        await care_actions.act(
            conn,
            store_id=principal.store_id,
            customer_id=cid,
            suggestion_id=suggestion_id,
            now=runtime.clock(),
            outcome="acted",
        )


@get("/v1/care/report", opt=requires(Scope.marketer), tags=["care"], summary="Care report")
async def care_report(
    conn: NamedDependency[Connection],
    runtime: NamedDependency[Runtime],
    principal: NamedDependency[Principal],
    month: Annotated[str | None, QueryParameter(pattern=r"^(19[7-9]\d|20\d\d)-(0[1-9]|1[0-2])$")] = None,
) -> CareReport:
    """Per trigger for a store-local month (default: this one): actions sent, budget used, and
    conversion (a paid order within 14 days of delivery)."""
    program = await programs.live_program(conn, store_id=principal.store_id)
    return await care_actions.report(
        conn, store_id=principal.store_id, program=program, now=runtime.clock(), month=month
    )
