"""Orders, their lines and refunds, and events parked until their order arrives."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection, unnest_columns


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    customer_id: str
    currency: str
    subtotal: int
    total: int
    placed_at: datetime
    status: str
    refunded: int
    micro_points: int
    points: int
    points_reversed: int
    awarded: bool


class LineRow(msgspec.Struct, frozen=True, kw_only=True):
    line_id: str
    quantity: int
    micro_points: int
    refunded_qty: int


class RecentOrderRow(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    placed_at: datetime
    subtotal: int
    refunded: int
    currency: str
    points: int
    """Net of what refunds and cancellation took back."""
    status: str


class ParkedEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_type: str
    payload: dict[str, Any]


# Paid orders in one statement: each order once (nothing else for one already known), its lines,
# catalogue rows for products no product event has described yet (kept as the line says), and the
# members' order counts (the caller holds the members' locks). It also says, per order, whether
# events wait parked for it: the caller holds the orders' key locks, taken in an earlier statement,
# so this statement's snapshot sees every park committed before it, and a later one waits for this
# transaction and then finds the order. Rows go in key order (orders, products), so concurrent
# batches wait for each other's uncommitted keys in one direction only. Parameters: $1 the store,
# $2 the program version, $3 awarded, $4-$12 the orders' columns, $13-$22 the lines' columns.
_INSERT_PAID = """
WITH paid AS (
    SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[],
                         $9::timestamptz[], $10::bigint[], $11::bigint[], $12::text[])
        AS o (order_id, customer_id, currency, subtotal, total, placed_at, micro_points, points, tier_code)
),
new_order AS (
    INSERT INTO orders (store_id, order_id, customer_id, currency, subtotal, total, placed_at,
                        micro_points, points, program_version, tier_code, awarded)
    SELECT $1, order_id, customer_id, currency, subtotal, total, placed_at, micro_points, points, $2,
           tier_code, $3
    FROM paid
    ORDER BY order_id
    ON CONFLICT (store_id, order_id) DO NOTHING
    RETURNING order_id, customer_id
),
line AS (
    SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
                         $19::int[], $20::bigint[], $21::bigint[], $22::bigint[])
        AS l (order_id, line_id, product_id, sku, title, category, quantity, unit_price, discount,
              micro_points)
),
new_lines AS (
    INSERT INTO order_lines (store_id, order_id, line_id, product_id, sku, title, category, quantity,
                             unit_price, discount, micro_points)
    SELECT $1, line.order_id, line.line_id, line.product_id, line.sku, line.title, line.category,
           line.quantity, line.unit_price, line.discount, line.micro_points
    FROM line JOIN new_order USING (order_id)
),
new_products AS (
    INSERT INTO products (store_id, product_id, title, category, price)
    SELECT DISTINCT ON (line.product_id) $1, line.product_id, line.title, line.category, line.unit_price
    FROM line JOIN new_order USING (order_id)
    WHERE line.product_id IS NOT NULL
    ORDER BY line.product_id
    ON CONFLICT (store_id, product_id) DO NOTHING
),
counted AS (
    UPDATE members m SET orders_count = m.orders_count + 1, updated_at = now()
    FROM new_order
    WHERE m.store_id = $1 AND m.customer_id = new_order.customer_id
)
SELECT paid.order_id, new_order.order_id IS NOT NULL AS inserted,
       EXISTS (SELECT FROM parked_events p WHERE p.store_id = $1 AND p.order_id = paid.order_id) AS parked
FROM paid LEFT JOIN new_order USING (order_id)
"""
# Transaction locks on order ids ($1 the store, $2 the ids), taken in the order given (callers sort):
# a scalar subquery, so the program read can take them in its own statement too.
LOCK_KEYS = """(SELECT count(pg_advisory_xact_lock(hashtextextended($1 || '/' || key, 0)))
    FROM unnest($2::text[]) AS key)"""
_LOCK_KEYS = f"SELECT {LOCK_KEYS}"
_ORDER_CUSTOMER = "SELECT customer_id FROM orders WHERE store_id = $1 AND order_id = $2"
_LOCK_ORDER = """
SELECT order_id, customer_id, currency, subtotal, total, placed_at, status, refunded, micro_points, points,
       points_reversed, awarded
FROM orders WHERE store_id = $1 AND order_id = $2 FOR UPDATE
"""
_LINES = """
SELECT line_id, quantity, micro_points, refunded_qty FROM order_lines
WHERE store_id = $1 AND order_id = $2 ORDER BY line_id
"""
_REFUND_LINES = """
UPDATE order_lines AS l SET refunded_qty = least(l.quantity, l.refunded_qty + r.quantity)
FROM unnest($3::text[], $4::int[]) AS r (line_id, quantity)
WHERE l.store_id = $1 AND l.order_id = $2 AND l.line_id = r.line_id
RETURNING l.line_id
"""
_INSERT_REFUND = """
INSERT INTO refunds (store_id, order_id, refund_id, amount, points) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING refund_id
"""
_SET_REFUND_POINTS = "UPDATE refunds SET points = $4 WHERE store_id = $1 AND order_id = $2 AND refund_id = $3"
_UPDATE_ORDER = """
UPDATE orders SET refunded = least(subtotal, refunded + $3), points_reversed = points_reversed + $4,
                  status = coalesce($5, status)
WHERE store_id = $1 AND order_id = $2
"""
# The tier metric of one member, by the same definition as the set-based tier evaluation:
# paid orders placed in (now - window, now], spend net of refunds, points net of reversals.
_MEMBER_METRIC = """
SELECT CASE $3::text
           WHEN 'spend' THEN coalesce(sum(subtotal - refunded), 0)
           WHEN 'points' THEN coalesce(sum(points - points_reversed), 0)
           ELSE count(*)
       END::bigint
FROM orders
WHERE store_id = $1 AND customer_id = $2 AND status = 'paid'
  AND placed_at > $4::timestamptz - make_interval(days => $5::int) AND placed_at <= $4::timestamptz
"""
_RECENT = """
SELECT order_id, placed_at, subtotal, refunded, currency, points - points_reversed AS points, status
FROM orders WHERE store_id = $1 AND customer_id = $2
ORDER BY placed_at DESC, order_id DESC
LIMIT $3
"""
_PARK = "INSERT INTO parked_events (store_id, order_id, event_type, payload) VALUES ($1, $2, $3, $4)"
_TAKE_PARKED = """
DELETE FROM parked_events WHERE store_id = $1 AND order_id = $2
RETURNING parked_id, event_type, payload
"""


class NewLine(msgspec.Struct, frozen=True):
    line_id: str
    product_id: str | None
    sku: str | None
    title: str | None
    category: str | None
    quantity: int
    unit_price: int
    discount: int
    micro_points: int


class PaidInsert(msgspec.Struct, frozen=True):
    inserted: bool
    """False when the order was already known: nothing was written."""
    parked: bool
    """Events wait parked for this order."""


class NewOrder(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    customer_id: str
    currency: str
    subtotal: int
    total: int
    placed_at: datetime
    micro_points: int
    points: int
    tier_code: str
    lines: list[NewLine]


_ORDER_COLUMNS = tuple(field for field in NewOrder.__struct_fields__ if field != "lines")


async def insert_paid(
    conn: Connection,
    *,
    store_id: str,
    program_version: int | None,
    awarded: bool,
    orders: Sequence[NewOrder],
) -> dict[str, PaidInsert]:
    """Insert paid orders with their lines, new products and their members' counts, each order once;
    by order id. Order ids and customer ids must be distinct.

    The caller holds the orders' key locks (from an earlier statement) and the members' locks.
    """
    order_rows = [tuple(getattr(order, field) for field in _ORDER_COLUMNS) for order in orders]
    line_rows = [(order.order_id, *msgspec.structs.astuple(line)) for order in orders for line in order.lines]
    rows = await conn.fetch(
        _INSERT_PAID,
        store_id,
        program_version,
        awarded,
        *unnest_columns(order_rows, len(_ORDER_COLUMNS)),
        *unnest_columns(line_rows, len(NewLine.__struct_fields__) + 1),
    )
    return {row["order_id"]: PaidInsert(row["inserted"], row["parked"]) for row in rows}


async def lock_order_keys(conn: Connection, *, store_id: str, order_ids: Sequence[str]) -> None:
    """Transaction locks on order ids (in sorted order), held whether or not the orders exist yet."""
    await conn.execute(_LOCK_KEYS, store_id, sorted(set(order_ids)))


async def order_customer(conn: Connection, *, store_id: str, order_id: str) -> str | None:
    customer_id: str | None = await conn.fetchval(_ORDER_CUSTOMER, store_id, order_id)
    return customer_id


async def lock_order(conn: Connection, *, store_id: str, order_id: str) -> OrderRow | None:
    row = await conn.fetchrow(_LOCK_ORDER, store_id, order_id)
    return None if row is None else msgspec.convert(row, OrderRow, from_attributes=True)


async def lines(conn: Connection, *, store_id: str, order_id: str) -> list[LineRow]:
    rows = await conn.fetch(_LINES, store_id, order_id)
    return msgspec.convert(rows, list[LineRow], from_attributes=True)


async def refund_lines(
    conn: Connection, *, store_id: str, order_id: str, quantities: dict[str, int]
) -> set[str]:
    """Add refunded quantities (capped at each line's quantity); returns the line ids that exist."""
    rows = await conn.fetch(_REFUND_LINES, store_id, order_id, list(quantities), list(quantities.values()))
    return {row["line_id"] for row in rows}


async def insert_refund(
    conn: Connection, *, store_id: str, order_id: str, refund_id: str, amount: int
) -> bool:
    return await conn.fetchval(_INSERT_REFUND, store_id, order_id, refund_id, amount, 0) is not None


async def set_refund_points(
    conn: Connection, *, store_id: str, order_id: str, refund_id: str, points: int
) -> None:
    await conn.execute(_SET_REFUND_POINTS, store_id, order_id, refund_id, points)


async def update_order(
    conn: Connection,
    *,
    store_id: str,
    order_id: str,
    refunded: int = 0,
    points_reversed: int = 0,
    status: str | None = None,
) -> None:
    await conn.execute(_UPDATE_ORDER, store_id, order_id, refunded, points_reversed, status)


async def park(
    conn: Connection, *, store_id: str, order_id: str, event_type: str, payload: dict[str, Any]
) -> None:
    await conn.execute(_PARK, store_id, order_id, event_type, payload)


async def take_parked(conn: Connection, *, store_id: str, order_id: str) -> list[ParkedEvent]:
    """Remove and return the events parked for an order, oldest first."""
    rows = sorted(await conn.fetch(_TAKE_PARKED, store_id, order_id), key=lambda row: row["parked_id"])
    return msgspec.convert(rows, list[ParkedEvent], from_attributes=True)


async def member_metric(
    conn: Connection, *, store_id: str, customer_id: str, metric: str, window_days: int, now: datetime
) -> int:
    """The member's tier metric (`spend`, `points` or `orders`) over the window ending at `now`."""
    value: int = await conn.fetchval(_MEMBER_METRIC, store_id, customer_id, metric, now, window_days)
    return value


async def recent(conn: Connection, *, store_id: str, customer_id: str, limit: int) -> list[RecentOrderRow]:
    """The member's latest orders, newest first."""
    rows = await conn.fetch(_RECENT, store_id, customer_id, limit)
    return msgspec.convert(rows, list[RecentOrderRow], from_attributes=True)
