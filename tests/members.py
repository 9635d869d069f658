"""Members with points for tests, made through the standard webhook, and the ledger's invariants."""

from __future__ import annotations

from typing import Any

import httpx

from loyalty.repository import Connection
from loyalty.stores import StoreCreated
from tests.events import make_customer, make_line, make_order, send


async def new_member(
    client: httpx.AsyncClient,
    store: StoreCreated,
    *,
    points: int,
    placed_at: str = "2026-11-20T10:00:00Z",
    customer: dict[str, Any] | None = None,
) -> str:
    """A member holding `points` from one paid order (1 point per EUR in the default program)."""
    customer = customer or make_customer()
    order = make_order(customer=customer, lines=[make_line(unit_price=points * 100)], placed_at=placed_at)
    response = await send(client, store, "order.paid", order)
    assert response.json() == {"status": "applied"}, response.text
    return str(customer["customer_id"])


async def balance(conn: Connection, store_id: str, customer_id: str) -> int:
    value = await conn.fetchval(
        "SELECT balance FROM members WHERE store_id = $1 AND customer_id = $2", store_id, customer_id
    )
    return int(value)


async def check_invariants(conn: Connection, store_id: str) -> None:
    """The ledger's invariants, for every member of the store:
    balance == sum of entries; each lot's consumed points == its consumptions; the open lots hold
    max(balance, 0); no lot over- or under-consumed."""
    bad_balances = await conn.fetch(
        """
        SELECT m.customer_id, m.balance, coalesce(sum(e.points), 0) AS ledger
        FROM members m LEFT JOIN ledger_entries e USING (store_id, customer_id)
        WHERE m.store_id = $1 GROUP BY m.customer_id, m.balance
        HAVING m.balance <> coalesce(sum(e.points), 0)
        """,
        store_id,
    )
    assert not bad_balances, [dict(row) for row in bad_balances]
    bad_lots = await conn.fetch(
        """
        SELECT l.lot_id, l.points, l.remaining, coalesce(sum(c.points), 0) AS consumed
        FROM point_lots l LEFT JOIN lot_consumptions c USING (lot_id)
        WHERE l.store_id = $1 GROUP BY l.lot_id
        HAVING l.points - l.remaining <> coalesce(sum(c.points), 0)
        """,
        store_id,
    )
    assert not bad_lots, [dict(row) for row in bad_lots]
    bad_open = await conn.fetch(
        """
        SELECT m.customer_id, m.balance,
               (SELECT coalesce(sum(remaining), 0) FROM point_lots l
                 WHERE l.store_id = m.store_id AND l.customer_id = m.customer_id) AS open
        FROM members m WHERE m.store_id = $1
        """,
        store_id,
    )
    for row in bad_open:
        assert row["open"] == max(row["balance"], 0), dict(row)
    # A redemption, an expiry or a negative adjustment takes exactly its points from lots; a
    # reversal takes what it finds (the rest is a debt); an earn takes only the debt it pays off.
    bad_entries = await conn.fetch(
        """
        SELECT e.entry_id, e.kind, e.points, coalesce(sum(c.points), 0) AS consumed
        FROM ledger_entries e LEFT JOIN lot_consumptions c USING (entry_id)
        WHERE e.store_id = $1 GROUP BY e.entry_id
        HAVING (e.points < 0 AND e.kind <> 'reverse' AND coalesce(sum(c.points), 0) <> -e.points)
            OR coalesce(sum(c.points), 0) > abs(e.points)
        """,
        store_id,
    )
    assert not bad_entries, [dict(row) for row in bad_entries]
