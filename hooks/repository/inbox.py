"""The inbox: one row per inbound event, unique per store, source and event id."""

from __future__ import annotations

from loyalty.repository import Connection

# A concurrent duplicate waits on the unique index until the first commits, then inserts nothing.
_INSERT = """
INSERT INTO inbox (store_id, source, event_id, event_type, outcome, delivery_id)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING event_id
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


async def set_outcome(conn: Connection, *, store_id: str, source: str, event_id: str, outcome: str) -> None:
    await conn.execute(_SET_OUTCOME, store_id, source, event_id, outcome)
