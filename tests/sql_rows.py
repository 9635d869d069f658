"""Rows written straight into the tables, for tests that need members and orders before ingestion."""

from __future__ import annotations

import itertools
from datetime import datetime

from loyalty.repository import Connection

_order_ids = itertools.count(1)


async def insert_member(
    conn: Connection,
    store_id: str,
    customer_id: str,
    *,
    tier_code: str = "member",
    tier_since: datetime | None = None,
    below_since: datetime | None = None,
    balance: int = 0,
) -> None:
    await conn.execute(
        """
        INSERT INTO members (store_id, customer_id, tier_code, tier_since, below_since, balance)
        VALUES ($1, $2, $3, coalesce($4, now()), $5, $6)
        """,
        store_id,
        customer_id,
        tier_code,
        tier_since,
        below_since,
        balance,
    )


async def insert_order(
    conn: Connection,
    store_id: str,
    customer_id: str,
    *,
    subtotal: int,
    placed_at: datetime,
    refunded: int = 0,
    points: int = 0,
    points_reversed: int = 0,
    status: str = "paid",
) -> str:
    order_id = f"o-{next(_order_ids)}"
    await conn.execute(
        """
        INSERT INTO orders (store_id, order_id, customer_id, currency, subtotal, total, placed_at,
                            status, refunded, points, points_reversed)
        VALUES ($1, $2, $3, 'EUR', $4, $4, $5, $6, $7, $8, $9)
        """,
        store_id,
        order_id,
        customer_id,
        subtotal,
        placed_at,
        status,
        refunded,
        points,
        points_reversed,
    )
    return order_id


async def tier_of(conn: Connection, store_id: str, customer_id: str) -> tuple[str, datetime, datetime | None]:
    """(tier_code, tier_since, below_since) of a member."""
    row = await conn.fetchrow(
        "SELECT tier_code, tier_since, below_since FROM members WHERE store_id = $1 AND customer_id = $2",
        store_id,
        customer_id,
    )
    assert row is not None
    return row["tier_code"], row["tier_since"], row["below_since"]
