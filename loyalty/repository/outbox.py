"""Outbound events, written in the transaction of the change that caused them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loyalty.repository import Connection

_INSERT = "INSERT INTO outbox (store_id, customer_id, event_type, payload) VALUES ($1, $2, $3, $4)"
_INSERT_MANY = """
INSERT INTO outbox (store_id, customer_id, event_type, payload)
SELECT $1, customer_id, $2, payload FROM unnest($3::text[], $4::jsonb[]) AS e (customer_id, payload)
"""


async def emit(
    conn: Connection, *, store_id: str, customer_id: str | None, event_type: str, data: dict[str, Any]
) -> None:
    payload = {"store_id": store_id, "customer_id": customer_id} | data
    await conn.execute(_INSERT, store_id, customer_id, event_type, payload)


async def emit_many(
    conn: Connection, *, store_id: str, event_type: str, events: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """One event per (customer_id, data) pair, in one statement."""
    if not events:
        return
    customer_ids = [customer_id for customer_id, _ in events]
    payloads = [{"store_id": store_id, "customer_id": customer_id} | data for customer_id, data in events]
    await conn.execute(_INSERT_MANY, store_id, event_type, customer_ids, payloads)
