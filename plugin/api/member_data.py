"""Following a member (SSE and the change log), exporting and erasing a member's data.

| route | scopes |
| --- | --- |
| `GET /v1/members/{cid}/events`, `GET …/changes` | channel, marketer, member token (its own) |
| `GET /v1/members/{cid}/export` | marketer, member token (its own) |
| `DELETE /v1/members/{cid}` | marketer |
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, delete, get
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_204_NO_CONTENT

from loyalty import privacy
from loyalty.privacy import ChangesPage, MemberExport
from loyalty.repository import Connection
from loyalty.stores import Principal, Scope
from plugin import change_feed, profile_cache
from plugin.auth import OWN_MEMBER, requires
from plugin.runtime import Runtime

FOLLOWERS = requires(Scope.channel, Scope.app, Scope.marketer)
MAX_VERSION = 2**63 - 1
"""Versions are bigints."""


class MemberDataController(Controller):
    path = "/v1/members/{cid:str}"
    opt = {OWN_MEMBER: True}  # noqa: RUF012
    tags = ["members"]  # noqa: RUF012

    @get("/changes", opt=FOLLOWERS, summary="The member's changes since a version")
    async def changes(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        since: Annotated[int, QueryParameter(ge=0, le=MAX_VERSION)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> ChangesPage:
        """Every version of the member after `since`, with what kind of change made it: how a
        follower that saw a gap in `/events` versions catches up."""
        return await privacy.changes_since(
            conn, store_id=principal.store_id, customer_id=cid, since=since, limit=limit
        )

    @get("/events", opt=FOLLOWERS, summary="Follow the member's changes (server-sent events)")
    async def events(
        self,
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
        since: Annotated[int | None, QueryParameter(ge=0, le=MAX_VERSION)] = None,
        last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    ) -> ServerSentEvent:
        """A `change` event per member version as it commits (`id` = the version, data =
        `{"version", "kinds", "changed_at"}`), from any replica; a reconnect with `Last-Event-ID`
        (or `since`) resumes after that version. Without either it starts at the current version."""
        async with runtime.pool.acquire() as conn:
            page = await privacy.changes_since(
                conn, store_id=principal.store_id, customer_id=cid, since=0, limit=1
            )
        start = page.version
        if last_event_id is not None and last_event_id.isdigit():
            start = int(last_event_id)
        elif since is not None:
            start = since

        async def stream() -> AsyncIterator[ServerSentEventMessage]:
            yield ServerSentEventMessage(event="ready", data=str(start), id=str(start))
            async for change in change_feed.follow(
                runtime, store_id=principal.store_id, customer_id=cid, since=start
            ):
                if change is None:
                    yield ServerSentEventMessage(comment="keep-alive")
                else:
                    data = msgspec.json.encode(change).decode()
                    yield ServerSentEventMessage(event="change", data=data, id=str(change.version))

        return ServerSentEvent(stream())

    @get(
        "/export",
        opt=requires(Scope.marketer, Scope.app),
        summary="Export all of a member's data",
    )
    async def export(
        self,
        conn: NamedDependency[Connection],
        runtime: NamedDependency[Runtime],
        principal: NamedDependency[Principal],
        cid: FromPath[str],
    ) -> MemberExport:
        """Everything kept about the member: profile, preferences and their history, orders with
        lines, the ledger, redemptions, tier changes, service cases with their timelines."""
        return await privacy.export(conn, store_id=principal.store_id, customer_id=cid, now=runtime.clock())

    @delete("/", status_code=HTTP_204_NO_CONTENT, opt=requires(Scope.marketer), summary="Erase a member")
    async def erase(
        self, runtime: NamedDependency[Runtime], principal: NamedDependency[Principal], cid: FromPath[str]
    ) -> None:
        """Erasure: name, email, birthday, consent, preferences and their history, case subjects and
        texts are removed; the ledger, orders and redemptions stay, anonymised under the
        storefront's opaque id; the cached profile is purged. The member is then unknown (404)."""
        # Its own transaction, committed before the purge: a read racing the erasure cannot
        # re-cache personal data after it.
        async with runtime.pool.acquire() as conn, conn.transaction():
            await privacy.erase(conn, store_id=principal.store_id, customer_id=cid, now=runtime.clock())
            await profile_cache.forget(conn, store_id=principal.store_id, customer_id=cid)
        await profile_cache.purge_now(runtime, store_id=principal.store_id, customer_id=cid)
