"""Care actions after the scan: deferred emission, attribution, the member's list, the report."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from loyalty.repository import Connection
from loyalty.repository.care import ACTION_COLUMNS, ATTRIBUTION_DAYS, EVENT_TYPE, PAYLOAD

# The row lock of the UPDATE makes a concurrent emitter wait, then skip the rows (emitted_at is
# no longer NULL when it re-checks): each due action reaches the outbox once.
_EMIT_DUE = f"""
WITH due AS (
    UPDATE care_actions SET emitted_at = $2
    WHERE store_id = $1 AND emitted_at IS NULL AND deliver_after <= $2
    RETURNING {ACTION_COLUMNS}
),
events AS (
    INSERT INTO outbox (store_id, customer_id, event_type, payload, created_at)
    SELECT $1, r.customer_id, {EVENT_TYPE}, {PAYLOAD}, $2 FROM due r
    RETURNING 1
)
SELECT count(*) FROM events
"""  # noqa: S608 - only module constants are interpolated

# The first paid order within ATTRIBUTION_DAYS of delivery links to the action. The lookback is
# a day longer than the window, so an order near its end is still linked by the next scan.
_ATTRIBUTE = f"""
WITH firsts AS (
    SELECT DISTINCT ON (a.action_id) a.action_id, o.order_id
    FROM care_actions a
    JOIN orders o ON o.store_id = a.store_id AND o.customer_id = a.customer_id AND o.status = 'paid'
                 AND o.placed_at >= a.deliver_after
                 AND o.placed_at < a.deliver_after + interval '{ATTRIBUTION_DAYS} days'
                 AND o.placed_at <= $2
    WHERE a.store_id = $1 AND a.order_id IS NULL AND a.emitted_at IS NOT NULL
      AND a.deliver_after > $2 - interval '{ATTRIBUTION_DAYS + 1} days'
    ORDER BY a.action_id, o.placed_at, o.order_id
)
UPDATE care_actions a SET order_id = f.order_id
FROM firsts f WHERE a.action_id = f.action_id
"""  # noqa: S608 - only module constants are interpolated

# Points gifts a scan issued at $2: their members are locked in key order (as every multi-member
# ledger change locks them), then one statement writes each gift's `adjust` entry and lot, pays a
# debt from the lot first (as any earning does), adds it to the balance, links the action to its
# entry and announces `points.changed`. `entry_id IS NULL` makes a second call a no-op; the reason
# names the action, so an entry is matched back to its action by it.
_LOCK_GIFTED = """
SELECT customer_id FROM members
WHERE store_id = $1 AND customer_id IN (
    SELECT customer_id FROM care_actions
    WHERE store_id = $1 AND created_at = $2 AND entry_id IS NULL AND kind = 'gift'
      AND gift ->> 'kind' = 'points')
ORDER BY customer_id
FOR NO KEY UPDATE
"""
_CREDIT_GIFTED = """
WITH gifts AS (
    SELECT a.action_id, a.customer_id, (a.gift ->> 'value')::bigint AS points, m.balance,
           format('care gift: %s (care action %s)', a.trigger, a.action_id) AS reason
    FROM care_actions a
    JOIN members m ON m.store_id = a.store_id AND m.customer_id = a.customer_id
    WHERE a.store_id = $1 AND a.created_at = $2 AND a.entry_id IS NULL AND a.kind = 'gift'
      AND a.gift ->> 'kind' = 'points' AND (a.gift ->> 'value')::bigint > 0
),
entries AS (
    INSERT INTO ledger_entries (store_id, customer_id, kind, points, reason, program_version, expires_at,
                                created_at)
    SELECT $1, customer_id, 'adjust', points, reason, $3, $4, $2 FROM gifts
    RETURNING entry_id, customer_id, reason
),
credited AS (
    SELECT g.action_id, g.customer_id, g.points, g.balance, g.reason, e.entry_id
    FROM gifts g JOIN entries e USING (customer_id, reason)
),
lots AS (
    INSERT INTO point_lots (store_id, customer_id, entry_id, points, remaining, available_at, expires_at)
    SELECT $1, customer_id, entry_id, points, points - least(points, greatest(-balance, 0)), $2, $4
    FROM credited
    RETURNING lot_id, entry_id, points - remaining AS debt
),
debts AS (
    INSERT INTO lot_consumptions (entry_id, lot_id, points)
    SELECT entry_id, lot_id, debt FROM lots WHERE debt > 0
),
balances AS (
    UPDATE members m SET balance = m.balance + c.points, updated_at = now()
    FROM credited c WHERE m.store_id = $1 AND m.customer_id = c.customer_id
    RETURNING m.customer_id, m.balance
),
linked AS (
    UPDATE care_actions a SET entry_id = c.entry_id FROM credited c WHERE a.action_id = c.action_id
),
announced AS (
    INSERT INTO outbox (store_id, customer_id, event_type, payload, created_at)
    SELECT $1, c.customer_id, 'points.changed',
           jsonb_build_object('store_id', $1::text, 'customer_id', c.customer_id, 'delta', c.points,
                              'balance', b.balance, 'reason', c.reason),
           $2
    FROM credited c JOIN balances b USING (customer_id)
)
SELECT count(*)::int FROM credited
"""
_LIST = """
SELECT action_id::text AS suggestion_id, trigger AS kind, product_ids, reason, expires_at, message, gift
FROM care_actions
WHERE store_id = $1 AND customer_id = $2 AND acted_at IS NULL AND deliver_after <= $3
  AND (expires_at IS NULL OR expires_at > $3)
ORDER BY created_at DESC, action_id DESC
LIMIT $4
"""
_MEMBER_EXISTS = "SELECT EXISTS (SELECT 1 FROM members WHERE store_id = $1 AND customer_id = $2)"
_ACT = """
UPDATE care_actions SET acted_at = $4, outcome = $5
WHERE store_id = $1 AND customer_id = $2 AND action_id = $3 AND acted_at IS NULL
RETURNING action_id
"""
_ACTION_EXISTS = """
SELECT EXISTS (SELECT 1 FROM care_actions WHERE store_id = $1 AND customer_id = $2 AND action_id = $3)
"""
_REPORT = f"""
SELECT a.trigger, a.kind, count(*)::int AS sent, coalesce(sum(a.cost), 0)::bigint AS cost,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM orders o
           WHERE o.store_id = a.store_id AND o.customer_id = a.customer_id AND o.status = 'paid'
             AND o.placed_at >= a.deliver_after
             AND o.placed_at < a.deliver_after + interval '{ATTRIBUTION_DAYS} days'))::int AS converted
FROM care_actions a
WHERE a.store_id = $1 AND a.budget_month = $2 AND a.emitted_at IS NOT NULL
GROUP BY a.trigger, a.kind
ORDER BY a.trigger
"""  # noqa: S608 - only module constants are interpolated
_BUDGET_USED = """
SELECT coalesce(sum(cost), 0)::bigint FROM care_actions WHERE store_id = $1 AND budget_month = $2
"""
_STORE_IDS = "SELECT store_id, timezone FROM stores ORDER BY store_id"


class SuggestionRow(msgspec.Struct, frozen=True, kw_only=True):
    suggestion_id: str
    kind: str
    product_ids: list[str]
    reason: str
    expires_at: datetime | None
    message: str
    gift: dict[str, object] | None


class TriggerReportRow(msgspec.Struct, frozen=True, kw_only=True):
    trigger: str
    kind: str
    sent: int
    cost: int
    converted: int


async def emit_due(conn: Connection, *, store_id: str, now: datetime) -> int:
    """Write the outbox rows of actions whose quiet hours are over; returns how many."""
    emitted: int = await conn.fetchval(_EMIT_DUE, store_id, now)
    return emitted


async def attribute(conn: Connection, *, store_id: str, now: datetime) -> int:
    """Link recent actions to the member's first paid order after them; returns how many."""
    status = await conn.execute(_ATTRIBUTE, store_id, now)
    return int(status.split()[-1])


async def credit_points_gifts(
    conn: Connection,
    *,
    store_id: str,
    now: datetime,
    program_version: int | None,
    expires_at: datetime | None,
) -> int:
    """Credit the points gifts the scan at `now` issued, once each; returns how many were credited.
    Call in the scan's transaction, so an action and its credit commit together."""
    await conn.execute(_LOCK_GIFTED, store_id, now)
    credited: int = await conn.fetchval(_CREDIT_GIFTED, store_id, now, program_version, expires_at)
    return credited


async def member_exists(conn: Connection, *, store_id: str, customer_id: str) -> bool:
    exists: bool = await conn.fetchval(_MEMBER_EXISTS, store_id, customer_id)
    return exists


async def open_actions(
    conn: Connection, *, store_id: str, customer_id: str, now: datetime, limit: int
) -> list[SuggestionRow]:
    """Delivered actions not acted on and not expired, newest first."""
    rows = await conn.fetch(_LIST, store_id, customer_id, now, limit)
    return msgspec.convert(rows, list[SuggestionRow], from_attributes=True)


async def act(
    conn: Connection, *, store_id: str, customer_id: str, action_id: int, now: datetime, outcome: str
) -> bool | None:
    """Mark an action acted on or dismissed.

    True if it changed, False if it already was, None if the member has no such action."""
    if await conn.fetchval(_ACT, store_id, customer_id, action_id, now, outcome) is not None:
        return True
    exists: bool = await conn.fetchval(_ACTION_EXISTS, store_id, customer_id, action_id)
    return False if exists else None


async def report(conn: Connection, *, store_id: str, month: date) -> list[TriggerReportRow]:
    """Per trigger: actions sent in the budget month, their cost, and how many led to an order."""
    rows = await conn.fetch(_REPORT, store_id, month)
    return msgspec.convert(rows, list[TriggerReportRow], from_attributes=True)


async def budget_used(conn: Connection, *, store_id: str, month: date) -> int:
    used: int = await conn.fetchval(_BUDGET_USED, store_id, month)
    return used


async def stores(conn: Connection) -> list[tuple[str, str]]:
    """(store_id, timezone) of every store, for the CLI's all-stores run."""
    return [(row["store_id"], row["timezone"]) for row in await conn.fetch(_STORE_IDS)]
