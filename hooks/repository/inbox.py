"""The inbox: one row per inbound event, unique per store, source and event id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from loyalty.repository import Connection, unnest_columns

# A concurrent duplicate waits on the unique index until the first commits, then inserts nothing.
_INSERT = """
INSERT INTO inbox (store_id, source, event_id, event_type, outcome, delivery_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING event_id
"""
# Several events in one statement, in key order: two transactions inserting the same keys wait for
# each other in one direction only.
_INSERT_MANY = """
INSERT INTO inbox (store_id, source, event_id, event_type, outcome, delivery_id)
SELECT $1, source, event_id, event_type, 'applied', delivery_id
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS e (source, event_id, event_type, delivery_id)
ORDER BY source, event_id
ON CONFLICT DO NOTHING
RETURNING source, event_id
"""
_SET_OUTCOME = "UPDATE inbox SET outcome = $4 WHERE store_id = $1 AND source = $2 AND event_id = $3"


async def insert(
    conn: Connection,
    *,
    store_id: str,
    source: str,
    event_id: str,
    event_type: str,
    outcome: str = "applied",
    delivery_id: str | None = None,
) -> bool:
    """True when the event is new. `delivery_id` is the platform's id of this delivery, for tracing."""
    inserted = await conn.fetchval(_INSERT, store_id, source, event_id, event_type, outcome, delivery_id)
    return inserted is not None


class InboxKey(NamedTuple):
    source: str
    event_id: str


async def insert_many(
    conn: Connection, *, store_id: str, events: Sequence[tuple[InboxKey, str, str | None]]
) -> set[InboxKey]:
    """Record events (key, type, delivery id) as applied; returns the keys that were new. Keys must
    be distinct."""
    rows = [(key.source, key.event_id, event_type, delivery_id) for key, event_type, delivery_id in events]
    inserted = await conn.fetch(_INSERT_MANY, store_id, *unnest_columns(rows, 4))
    return {InboxKey(row["source"], row["event_id"]) for row in inserted}


async def set_outcome(conn: Connection, *, store_id: str, source: str, event_id: str, outcome: str) -> None:
    await conn.execute(_SET_OUTCOME, store_id, source, event_id, outcome)
