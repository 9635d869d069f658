"""The member-facing API: member tokens, the member view, the ledger, redemptions and adjustments.

Every route here but the list is under `/v1/members/{cid}` and marked `OWN_MEMBER`: a member token acts for
its own member only (another member is a 404, as for an unknown one). API keys see every member
of their store, by scope:

| route | scopes |
| --- | --- |
| `GET /v1/members` (the list) | marketer, channel |
| `POST /tokens` | storefront, channel |
| `GET /`, `GET /ledger` | channel, marketer, member token (its own) |
| `POST /redemptions` | channel, marketer, member token (its own) |
| `POST /adjustments` | marketer |
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_304_NOT_MODIFIED

from loyalty import adjustments, member_tokens, members, programs, redemptions
from loyalty.adjustments import AdjustmentCreate, AdjustmentCreated
from loyalty.idempotency import Key
from loyalty.member_tokens import MemberToken, MemberTokenCreate
from loyalty.members import LedgerPage, MemberPage, MemberView
from loyalty.redemptions import RedemptionCreate, RedemptionCreated
from loyalty.repository import Connection
from loyalty.stores import Principal, Scope
from plugin import profile_cache
from plugin.api.paging import Cursor, Limit, decode_cursor, encode_cursor
from plugin.auth import OWN_MEMBER, requires
from plugin.openapi import problems
from plugin.runtime import Runtime

IdempotencyKey = Annotated[
    Key | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes a retry safe: the same key and body answer the first response, with one effect.",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list (or `*`) against an ETag."""
    if if_none_match is None:
        return False
    candidates = [item.strip().removeprefix("W/") for item in if_none_match.split(",")]
    return "*" in candidates or etag.removeprefix("W/") in candidates


def replayed_header(replayed: bool) -> dict[str, str]:
    return {REPLAYED_HEADER: "true"} if replayed else {}


@get("/v1/members", opt=requires(Scope.marketer, Scope.channel), tags=["members"], summary="List members")
async def list_members(
    conn: NamedDependency[Connection],
    principal: NamedDependency[Principal],
    q: Annotated[
        str | None,
        QueryParameter(min_length=1, max_length=200, description="A prefix of the customer id or the email"),
    ] = None,
    tier: Annotated[
        str | None, QueryParameter(max_length=32, description="Only members of this level")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> MemberPage:
    """The store's members by customer id, a page at a time, with their level and points; erased
    members are left out. `q` matches the start of the customer id or (any case) of the email."""
    after = None if cursor is None else decode_cursor(cursor, str)
    items, last = await members.page(
        conn, store_id=principal.store_id, search=q, tier=tier, after=after, limit=limit
    )
    return MemberPage(items=items, next_cursor=None if last is None else encode_cursor(last))


class MembersController(Controller):
    path = "/v1/members/{cid:str}"
    opt = {OWN_MEMBER: True}  # noqa: RUF012
    tags = ["members"]  # noqa: RUF012

    @post(
        "/tokens",
        status_code=HTTP_201_CREATED,
        opt=requires(Scope.storefront, Scope.channel),
        summary="Issue a member token",
    )
    async def create_token(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        data: JSONBody[MemberTokenCreate | None] = None,
    ) -> MemberToken:
        """A bearer token with which an app reads and acts for this member only, until it expires
        (an hour unless `ttl_seconds` says otherwise). 404 for an unknown member."""
        return await member_tokens.issue(
            conn,
            store_id=principal.store_id,
            customer_id=cid,
            now=runtime.clock(),
            ttl_seconds=(data or MemberTokenCreate()).ttl_seconds,
        )

    @get(
        "/",
        opt=requires(Scope.channel, Scope.app, Scope.marketer),
        summary="The member view",
        response_description="The member's profile (a `MemberView`)",
        responses={
            HTTP_200_OK: ResponseSpec(MemberView, description="The member's profile"),
            HTTP_304_NOT_MODIFIED: ResponseSpec(
                None, description="Not modified: the `If-None-Match` ETag is still current"
            ),
        },
    )
    async def get_member(
        self,
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
    ) -> Response[Any]:
        """The one profile: tier and progress, points (balance, pending, expiring in 30 days),
        preferences with provenance, open service cases with their promises (breached first),
        recent orders, and the member's `version`. Read-your-writes on every channel: once a write
        returns, this shows it. Carries an `ETag`; `If-None-Match` with it answers 304 while
        nothing changed."""
        entry = await profile_cache.profile(runtime, store_id=principal.store_id, customer_id=cid)
        if etag_matches(if_none_match, entry.etag):
            return Response(content=None, status_code=HTTP_304_NOT_MODIFIED, headers={"ETag": entry.etag})
        return Response(entry.body, media_type=MediaType.JSON, headers={"ETag": entry.etag})

    @get(
        "/ledger",
        opt=requires(Scope.channel, Scope.app, Scope.marketer),
        summary="The member's points ledger",
    )
    async def get_ledger(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> LedgerPage:
        """Every change of the member's points and why, newest first, a page at a time."""
        return await members.ledger_page(
            conn, store_id=principal.store_id, customer_id=cid, cursor=cursor, limit=limit
        )

    @post(
        "/redemptions",
        status_code=HTTP_201_CREATED,
        opt=requires(Scope.channel, Scope.app, Scope.marketer),
        responses=problems(409),
        summary="Redeem points for a reward",
    )
    async def redeem(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        data: JSONBody[RedemptionCreate],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RedemptionCreated]:
        """Spend spendable points (pending ones excluded) on a reward of the program; issues a
        voucher code. `Idempotency-Key` is required: the same key and body answer the first
        response (with `Idempotent-Replayed: true`) and deduct once; the same key with another
        body is 422. 409 `insufficient-points` when the points do not cover the reward, 422 for an
        unknown reward, 404 for an unknown member."""
        program = await programs.live_program(conn, store_id=principal.store_id)
        created, replayed = await redemptions.redeem_once(
            conn,
            store_id=principal.store_id,
            customer_id=cid,
            data=data,
            idempotency_key=idempotency_key,
            program=program,
            now=runtime.clock(),
        )
        return Response(created, status_code=HTTP_201_CREATED, headers=replayed_header(replayed))

    @post(
        "/adjustments",
        status_code=HTTP_201_CREATED,
        opt=requires(Scope.marketer),
        responses=problems(409),
        summary="Adjust a member's points",
    )
    async def adjust(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        data: JSONBody[AdjustmentCreate],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[AdjustmentCreated]:
        """Give (positive `points`, a lot expiring by the program) or take (negative; 409 when the
        member's points do not cover it — an adjustment never makes a debt) points, with a reason.
        `Idempotency-Key` is optional and works as for redemptions."""
        program = await programs.live_program(conn, store_id=principal.store_id)
        created, replayed = await adjustments.adjust_once(
            conn,
            store_id=principal.store_id,
            customer_id=cid,
            data=data,
            idempotency_key=idempotency_key,
            program=program,
            now=runtime.clock(),
        )
        return Response(created, status_code=HTTP_201_CREATED, headers=replayed_header(replayed))
