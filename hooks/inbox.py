"""Receive an inbound event exactly once: the inbox row and the event's effect share a transaction."""

from __future__ import annotations

from datetime import datetime

from hooks.repository import inbox as repo
from loyalty import ingest
from loyalty.events import Event
from loyalty.orders import Outcome
from loyalty.repository import Connection
from loyalty.repository.stores import StoreRow


async def receive(
    conn: Connection,
    *,
    store: StoreRow,
    source: str,
    event_id: str,
    event_type: str,
    event: Event,
    now: datetime,
) -> Outcome:
    """Record and apply an event; a second delivery of the same id is a `duplicate` and changes nothing."""
    if not await repo.insert(
        conn, store_id=store.store_id, source=source, event_id=event_id, event_type=event_type
    ):
        return "duplicate"
    outcome = await ingest.apply(conn, store=store, event=event, now=now)
    if outcome != "applied":
        await repo.set_outcome(
            conn, store_id=store.store_id, source=source, event_id=event_id, outcome=outcome
        )
    return outcome
