"""Outbound events, written in the transaction of the change that caused them."""

from __future__ import annotations

from typing import Any

from loyalty.repository import Connection

_INSERT = "INSERT INTO outbox (store_id, customer_id, event_type, payload) VALUES ($1, $2, $3, $4)"


async def emit(
    conn: Connection, *, store_id: str, customer_id: str | None, event_type: str, data: dict[str, Any]
) -> None:
    payload = {"store_id": store_id, "customer_id": customer_id} | data
    await conn.execute(_INSERT, store_id, customer_id, event_type, payload)
