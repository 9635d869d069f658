"""Redemptions: a reward issued for points, with its voucher code."""

from __future__ import annotations

from datetime import datetime

from loyalty.repository import Connection

_INSERT = """
INSERT INTO redemptions (store_id, redemption_id, customer_id, reward_id, points, voucher_code, value,
                         created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def insert(
    conn: Connection,
    *,
    store_id: str,
    redemption_id: str,
    customer_id: str,
    reward_id: str,
    points: int,
    voucher_code: str,
    value: int,
    now: datetime,
) -> None:
    await conn.execute(
        _INSERT, store_id, redemption_id, customer_id, reward_id, points, voucher_code, value, now
    )
