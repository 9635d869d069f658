"""The member's timeline: preference changes and service case events, newest first."""

from __future__ import annotations

import msgspec

from loyalty.errors import NotFound
from loyalty.preferences import TimelineEntry
from loyalty.repository import Connection
from loyalty.repository import cases as cases_repo
from loyalty.repository import members as members_repo
from loyalty.repository import preferences as preferences_repo


class Timeline(msgspec.Struct, kw_only=True):
    """Who changed what, when, on which channel; newest first."""

    items: list[TimelineEntry]


async def member_timeline(
    conn: Connection, *, store_id: str, customer_id: str, limit: int, internal: bool
) -> Timeline:
    """The latest `limit` entries; without `internal`, case notes (agents' internal remarks) are left out."""
    if await members_repo.find(conn, store_id=store_id, customer_id=customer_id) is None:
        raise NotFound(f"no member {customer_id}")
    changes = await preferences_repo.history(conn, store_id=store_id, customer_id=customer_id, limit=limit)
    events = await cases_repo.member_events(conn, store_id=store_id, customer_id=customer_id, limit=limit)
    items = [
        TimelineEntry(
            at=change.recorded_at,
            kind="preference",
            channel=change.channel,
            actor=change.actor,
            key=change.key,
            value=change.value,
            applied=change.applied,
            occurred_at=change.occurred_at,
        )
        for change in changes
    ] + [
        TimelineEntry(
            at=event.created_at,
            kind=f"case.{event.kind}",
            channel=event.channel,
            actor=event.actor,
            value=event.status if event.kind == "status" else event.body,
            case_id=event.case_id,
        )
        for event in events
        if internal or event.kind != "note"
    ]
    items.sort(key=lambda item: item.at, reverse=True)
    return Timeline(items=items[:limit])
