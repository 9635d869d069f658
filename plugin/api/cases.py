"""Service cases: opened on any channel, followed through their timeline, rated, measured.

| route | scopes |
| --- | --- |
| `POST /v1/members/{cid}/cases` | channel, marketer, member token (its own) |
| `GET /v1/members/{cid}/cases`, `GET /v1/cases/{case_id}` | channel, marketer, member token (its own) |
| `POST /v1/cases/{case_id}/events` | channel, marketer |
| `POST /v1/cases/{case_id}/satisfaction` | channel, member token (its own case) |
| `GET /v1/cases/metrics` | channel, marketer |
| `GET`/`PUT /v1/cases/policy` | marketer (GET: channel too) |

Writes accept `Idempotency-Key`. A member token sees another member's case as unknown (404).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from loyalty import cases, idempotency
from loyalty.cases import (
    Case,
    CaseCreate,
    CaseEventCreate,
    CaseList,
    MetricsReport,
    SatisfactionCreate,
    Status,
)
from loyalty.repository import Connection
from loyalty.sla import SlaPolicy
from loyalty.stores import Principal, Scope
from plugin.api.members import IdempotencyKey, replayed_header
from plugin.auth import OWN_MEMBER, actor_of, requires
from plugin.openapi import problems
from plugin.runtime import Runtime

READERS = requires(Scope.channel, Scope.app, Scope.marketer)


class MemberCasesController(Controller):
    path = "/v1/members/{cid:str}/cases"
    opt = {OWN_MEMBER: True}  # noqa: RUF012
    tags = ["cases"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        opt=requires(Scope.channel, Scope.app, Scope.marketer),
        summary="Open a service case",
    )
    async def open_case(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        data: JSONBody[CaseCreate],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Case]:
        """Open a case for the member on `channel`; answers it with the store's promises
        (`first_response_due`, `resolution_due`) for its priority. Emits `case.opened`."""

        async def run() -> Case:
            return await cases.open_case(
                conn,
                store_id=principal.store_id,
                customer_id=cid,
                data=data,
                actor=actor_of(principal),
                now=runtime.clock(),
            )

        case, replayed = await idempotency.once(
            conn,
            store_id=principal.store_id,
            scope=f"cases:{cid}",
            key=idempotency_key,
            request=data,
            run=run,
            result_type=Case,
        )
        return Response(case, status_code=HTTP_201_CREATED, headers=replayed_header(replayed))

    @get("/", opt=READERS, summary="The member's cases")
    async def list_cases(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        status: Annotated[Status | None, QueryParameter()] = None,
    ) -> CaseList:
        """The member's cases (of one `status` if given), breached ones first, then by resolution due."""
        return await cases.member_cases(
            conn, store_id=principal.store_id, customer_id=cid, status=status, now=runtime.clock()
        )


class CasesController(Controller):
    path = "/v1/cases"
    tags = ["cases"]  # noqa: RUF012

    @get("/metrics", opt=requires(Scope.channel, Scope.marketer), summary="Service metrics")
    async def metrics(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        days: Annotated[int, QueryParameter(ge=1, le=3660)] = 30,
    ) -> MetricsReport:
        """For cases opened in the last `days` days: how many, how many still open, the median time
        to first response, the breach rate and mean satisfaction; overall, by channel, by category."""
        return await cases.metrics(conn, store_id=principal.store_id, now=runtime.clock(), days=days)

    @get("/policy", opt=requires(Scope.channel, Scope.marketer), summary="The store's SLA policy")
    async def get_policy(
        self, conn: NamedDependency[Connection], principal: NamedDependency[Principal]
    ) -> SlaPolicy:
        """The promises the store makes per priority, and its business hours (defaults until set)."""
        return await cases.policy(conn, store_id=principal.store_id)

    @put("/policy", opt=requires(Scope.marketer), summary="Set the store's SLA policy")
    async def put_policy(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        data: JSONBody[SlaPolicy],
    ) -> SlaPolicy:
        """Replace the SLA policy: targets for all four priorities, optionally in business hours
        (counted in the store's time zone). Applies to cases opened or reopened from now on."""
        return await cases.set_policy(conn, store_id=principal.store_id, new=data)

    @get("/{case_id:str}", opt=READERS, summary="A service case and its timeline")
    async def get_case(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        case_id: FromPath[str],
    ) -> Case:
        """The case, its promises and its timeline; a member token sees its own cases only, without
        internal notes."""
        return await cases.get_case(
            conn,
            store_id=principal.store_id,
            case_id=case_id,
            customer_id=principal.customer_id,
            now=runtime.clock(),
        )

    @post(
        "/{case_id:str}/events",
        status_code=HTTP_201_CREATED,
        opt=requires(Scope.channel, Scope.marketer),
        responses=problems(409),
        summary="Add a note, response or status change",
    )
    async def add_event(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        case_id: FromPath[str],
        data: JSONBody[CaseEventCreate],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Case]:
        """Grow the timeline. The first `response` records the first-response time; statuses go
        open → pending → resolved → closed, and a resolved or closed case may be reopened (409 for
        any other move). Emits `case.updated`."""

        async def run() -> Case:
            return await cases.add_event(
                conn,
                store_id=principal.store_id,
                case_id=case_id,
                data=data,
                actor=actor_of(principal),
                now=runtime.clock(),
            )

        case, replayed = await idempotency.once(
            conn,
            store_id=principal.store_id,
            scope=f"case-events:{case_id}",
            key=idempotency_key,
            request=data,
            run=run,
            result_type=Case,
        )
        return Response(case, status_code=HTTP_201_CREATED, headers=replayed_header(replayed))

    @post(
        "/{case_id:str}/satisfaction",
        status_code=HTTP_201_CREATED,
        opt=requires(Scope.channel, Scope.app),
        responses=problems(409),
        summary="Rate a resolved case",
    )
    async def rate(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        case_id: FromPath[str],
        data: JSONBody[SatisfactionCreate],
    ) -> Case:
        """The customer's score (1-5) and comment, once the case is resolved (409 before). The
        member's app rates its own cases with a member token; a channel records a rating it took."""
        return await cases.rate(
            conn,
            store_id=principal.store_id,
            case_id=case_id,
            data=data,
            customer_id=principal.customer_id,
            channel="app" if principal.customer_id is not None else "channel",
            actor=actor_of(principal),
            now=runtime.clock(),
        )
