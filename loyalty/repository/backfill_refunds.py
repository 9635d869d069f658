"""SQL of the backfill's refunds and cancellations: staged, then applied set-based at the end.

The staging tables are those of loyalty/repository/backfill.py (`bf_refunds`, `bf_refund_lines`,
`bf_cancels`, `bf_new_orders`); only orders that earned no points are handled here.
"""

from __future__ import annotations

from loyalty.repository import Connection

RefundRecord = tuple[int, int | None, str, str, int]
"""(seq, line_no, order_id, refund_id, amount)"""
RefundLineRecord = tuple[int, str, str, int]
"""(seq, order_id, line_id, quantity)"""
CancelRecord = tuple[int, int | None, str]
"""(seq, line_no, order_id)"""

_ORDER_STATES = """
SELECT order_id, awarded FROM orders WHERE store_id = $1 AND order_id = ANY($2::text[])
"""
# Refunds and cancellations parked (by webhooks) for orders this backfill brought: applied with it.
_TAKE_PARKED = """
WITH taken AS (
    DELETE FROM parked_events AS p USING bf_new_orders AS n
    WHERE p.store_id = $1 AND p.order_id = n.order_id
    RETURNING p.parked_id - 4611686018427387904 AS seq, p.event_type, p.payload
),
refunds AS (
    INSERT INTO bf_refunds (seq, order_id, refund_id, amount)
    SELECT seq, payload->>'order_id', payload->>'refund_id', (payload->>'amount')::bigint
    FROM taken WHERE event_type = 'order.refunded'
),
refund_lines AS (
    INSERT INTO bf_refund_lines (seq, order_id, line_id, quantity)
    SELECT seq, payload->>'order_id', x.line_id, x.quantity
    FROM taken, jsonb_to_recordset(coalesce(payload->'lines', '[]')) AS x (line_id text, quantity integer)
    WHERE event_type = 'order.refunded'
)
INSERT INTO bf_cancels (seq, order_id)
SELECT seq, payload->>'order_id' FROM taken WHERE event_type = 'order.cancelled'
"""
_PARK = """
INSERT INTO parked_events (store_id, order_id, event_type, payload)
SELECT $1, e.order_id, e.event_type, e.payload::jsonb
FROM unnest($2::text[], $3::text[], $4::text[]) AS e (order_id, event_type, payload)
WHERE NOT EXISTS (
    SELECT 1 FROM parked_events AS p
    WHERE p.store_id = $1 AND p.order_id = e.order_id AND p.event_type = e.event_type
      AND p.payload = e.payload::jsonb
)
"""
_IS_PARKED = """
SELECT EXISTS (
    SELECT 1 FROM parked_events
    WHERE store_id = $1 AND order_id = $2 AND event_type = $3 AND payload = $4::text::jsonb
)
"""
# The first of each (order, refund) not recorded yet, and whether its order was still paid then.
_NEW_REFUNDS = """
CREATE TEMP TABLE bf_new_refunds ON COMMIT DROP AS
SELECT r.*, (o.status = 'paid' AND NOT EXISTS (
           SELECT 1 FROM bf_cancels AS c WHERE c.order_id = r.order_id AND c.seq < r.seq
       )) AS effective
FROM (SELECT DISTINCT ON (order_id, refund_id) * FROM bf_refunds ORDER BY order_id, refund_id, seq) AS r
JOIN orders AS o ON o.store_id = $1 AND o.order_id = r.order_id
WHERE NOT EXISTS (
    SELECT 1 FROM refunds AS x WHERE x.store_id = $1 AND x.order_id = r.order_id AND x.refund_id = r.refund_id
)
"""
_UNKNOWN_REFUND_LINES = """
SELECT r.line_no, r.order_id, array_agg(rl.line_id ORDER BY rl.line_id) AS line_ids
FROM bf_new_refunds AS r
JOIN bf_refund_lines AS rl ON rl.seq = r.seq
-- One primary-key probe per refund line: the store's lines were just loaded, so the planner's
-- statistics still think they are few and would otherwise scan them all once per refund line.
LEFT JOIN LATERAL (
    SELECT true AS found FROM order_lines AS l
    WHERE l.store_id = $1 AND l.order_id = rl.order_id AND l.line_id = rl.line_id
) AS l ON true
WHERE r.effective AND l.found IS NULL
GROUP BY r.seq, r.line_no, r.order_id
ORDER BY r.seq
LIMIT 10
"""
_RECORD_REFUNDS = """
INSERT INTO refunds (store_id, order_id, refund_id, amount, points)
SELECT $1, order_id, refund_id, amount, 0 FROM bf_new_refunds
ON CONFLICT DO NOTHING
"""
_REFUND_AMOUNTS = """
UPDATE orders AS o SET refunded = least(o.subtotal, o.refunded + r.amount)
FROM (SELECT order_id, sum(amount) AS amount FROM bf_new_refunds WHERE effective GROUP BY order_id) AS r
WHERE o.store_id = $1 AND o.order_id = r.order_id
"""
_REFUND_QUANTITIES = """
UPDATE order_lines AS l SET refunded_qty = least(l.quantity, l.refunded_qty + q.quantity)
FROM (
    SELECT rl.order_id, rl.line_id, sum(rl.quantity) AS quantity
    FROM bf_new_refunds AS r JOIN bf_refund_lines AS rl ON rl.seq = r.seq
    WHERE r.effective GROUP BY rl.order_id, rl.line_id
) AS q
WHERE l.store_id = $1 AND l.order_id = q.order_id AND l.line_id = q.line_id
"""
# A cancellation reverses what the order earned: nothing here, these orders earned no points.
_CANCEL = """
WITH cancelled AS (
    UPDATE orders AS o SET status = 'cancelled', points_reversed = o.points
    FROM (SELECT DISTINCT order_id FROM bf_cancels) AS c
    WHERE o.store_id = $1 AND o.order_id = c.order_id AND o.status = 'paid'
    RETURNING o.customer_id
),
counted AS (
    UPDATE members AS m SET orders_count = m.orders_count - c.orders, updated_at = now()
    FROM (SELECT customer_id, count(*) AS orders FROM cancelled GROUP BY customer_id) AS c
    WHERE m.store_id = $1 AND m.customer_id = c.customer_id
)
SELECT count(*) FROM cancelled
"""


async def order_states(conn: Connection, *, store_id: str, order_ids: list[str]) -> dict[str, bool]:
    """Whether each known order was awarded points; unknown orders are absent."""
    rows = await conn.fetch(_ORDER_STATES, store_id, order_ids)
    return {row["order_id"]: row["awarded"] for row in rows}


async def stage_refunds(
    conn: Connection,
    *,
    refunds: list[RefundRecord],
    refund_lines: list[RefundLineRecord],
    cancels: list[CancelRecord],
) -> None:
    await conn.copy_records_to_table("bf_refunds", records=refunds)
    await conn.copy_records_to_table("bf_refund_lines", records=refund_lines)
    await conn.copy_records_to_table("bf_cancels", records=cancels)


async def take_parked(conn: Connection, *, store_id: str) -> None:
    """Move events parked for the orders just loaded into the staging tables, before the file's."""
    await conn.execute(_TAKE_PARKED, store_id)


async def park(conn: Connection, *, store_id: str, events: list[tuple[str, str, str]]) -> None:
    """Park (order_id, event_type, payload JSON) for orders not known yet, each at most once."""
    if events:
        columns = list(zip(*events, strict=True))
        await conn.execute(_PARK, store_id, *columns)


async def is_parked(conn: Connection, *, store_id: str, order_id: str, event_type: str, payload: str) -> bool:
    """Whether this very event (payload as JSON) already waits for its order."""
    parked: bool = await conn.fetchval(_IS_PARKED, store_id, order_id, event_type, payload)
    return parked


RefundProblem = tuple[int | None, str, list[str]]
"""(line_no or None for a parked event, order_id, line ids the order does not have)"""


async def apply_refunds(conn: Connection, *, store_id: str) -> tuple[int, list[RefundProblem]]:
    """Record the staged refunds and apply amounts and quantities, set-based.

    Returns (refunds recorded, problems): a problem is a refund naming lines its order does not
    have, as (line_no, order_id, line_ids); when there are any nothing is applied.
    """
    await conn.execute(_NEW_REFUNDS, store_id)
    # Temporary tables get no statistics by themselves; without them the joins below loop.
    await conn.execute("ANALYZE bf_new_refunds, bf_refund_lines, bf_cancels")
    problems = [
        (row["line_no"], row["order_id"], list(row["line_ids"]))
        for row in await conn.fetch(_UNKNOWN_REFUND_LINES, store_id)
    ]
    if problems:
        return 0, problems
    status = await conn.execute(_RECORD_REFUNDS, store_id)
    await conn.execute(_REFUND_AMOUNTS, store_id)
    await conn.execute(_REFUND_QUANTITIES, store_id)
    return int(status.rsplit(" ", 1)[1]), []


async def apply_cancels(conn: Connection, *, store_id: str) -> int:
    """Cancel the staged orders still paid; returns how many were."""
    cancelled: int = await conn.fetchval(_CANCEL, store_id)
    return cancelled
