"""Preferences every channel shares, with provenance, and the member's timeline.

| route | scopes |
| --- | --- |
| `GET /v1/members/{cid}/preferences`, `GET …/timeline` | channel, marketer, member token (its own) |
| `PATCH /v1/members/{cid}/preferences` | channel, marketer, member token (its own) |
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, patch
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from loyalty import idempotency, preferences, timeline
from loyalty.preferences import PreferencesUpdate, PreferencesView
from loyalty.repository import Connection
from loyalty.stores import Principal, Scope
from loyalty.timeline import Timeline
from plugin.api.members import IdempotencyKey, replayed_header
from plugin.auth import OWN_MEMBER, actor_of, requires
from plugin.openapi import problems
from plugin.runtime import Runtime

READERS = requires(Scope.channel, Scope.app, Scope.marketer)


class PreferencesController(Controller):
    path = "/v1/members/{cid:str}"
    opt = {OWN_MEMBER: True}  # noqa: RUF012
    tags = ["members"]  # noqa: RUF012

    @get("/preferences", opt=READERS, summary="The member's preferences")
    async def get_preferences(
        self, conn: NamedDependency[Connection], principal: NamedDependency[Principal], cid: FromPath[str]
    ) -> Response[PreferencesView]:
        """Each preference with its provenance (value, channel, actor, occurred_at), and an `ETag`
        to send as `If-Match` with a change."""
        view, tag = await preferences.current(conn, store_id=principal.store_id, customer_id=cid)
        return Response(view, headers={"ETag": tag})

    @patch(
        "/preferences",
        opt=requires(Scope.channel, Scope.app, Scope.marketer),
        responses=problems(412),
        summary="Change the member's preferences",
    )
    async def update_preferences(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        data: JSONBody[PreferencesUpdate],
        if_match: Annotated[str | None, HeaderParameter(name="If-Match")] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[PreferencesView]:
        """Merge the given keys (a list or `sizes` replaces the kept one). A key whose kept value
        happened after this change's `occurred_at` is left alone and named in `ignored`.
        `If-Match` (the preferences' ETag) makes it 412 when someone changed them meanwhile;
        `Idempotency-Key` makes a retry safe."""

        async def run() -> PreferencesView:
            view, _ = await preferences.update(
                conn,
                store_id=principal.store_id,
                customer_id=cid,
                data=data,
                actor=actor_of(principal),
                if_match=if_match,
                now=runtime.clock(),
            )
            return view

        view, replayed = await idempotency.once(
            conn,
            store_id=principal.store_id,
            scope=f"preferences:{cid}",
            key=idempotency_key,
            request=data,
            run=run,
            result_type=PreferencesView,
            status_code=200,
        )
        headers = {"ETag": preferences.view_etag(view)} | replayed_header(replayed)
        return Response(view, headers=headers)

    @get("/timeline", opt=READERS, summary="Who changed what, when, on which channel")
    async def get_timeline(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> Timeline:
        """Preference changes (applied or not, with their channel and actor) and service case events,
        newest first. A member token does not see internal case notes."""
        return await timeline.member_timeline(
            conn,
            store_id=principal.store_id,
            customer_id=cid,
            limit=limit,
            internal=principal.customer_id is None,
        )
