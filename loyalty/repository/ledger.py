"""Ledger entries, point lots and their consumption. Callers hold the member's row lock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from loyalty.repository import Connection, unnest_columns


class EntryRow(msgspec.Struct, frozen=True, kw_only=True):
    entry_id: int
    kind: str
    points: int
    order_id: str | None
    refund_id: str | None
    redemption_id: str | None
    reason: str
    rules: list[str]
    program_version: int | None
    expires_at: datetime | None
    available_at: datetime | None
    created_at: datetime


class ExpiringPoints(msgspec.Struct, frozen=True, kw_only=True):
    points: int
    expires_at: datetime


class PointTotals(msgspec.Struct, frozen=True, kw_only=True):
    available: int
    """In open lots that can be spent now."""
    pending: int
    """In open lots still inside the return window."""


class Expired(msgspec.Struct, frozen=True, kw_only=True):
    """Points one member lost to expiry, and their balance after it."""

    customer_id: str
    points: int
    balance: int


_INSERT_ENTRY = """
INSERT INTO ledger_entries (store_id, customer_id, kind, points, order_id, refund_id, redemption_id,
                            reason, rules, program_version, expires_at, available_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING entry_id
"""
# Earnings in one statement, one per member (the caller holds the members' locks): each its entry
# and lot, the member's balance, and with `_ANNOUNCE` the points.changed outbox row carrying the
# new balance. $1 the store, $2 the kind, $3 the program version, $4 now; per earning ($5-$12) the
# member, points, order, reason, rules (a JSON array), expiry, the entry's available_at (null
# unless points are pending) and the lot's (never null).
_EARN_WRITES = """
WITH credit AS (
    SELECT * FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[],
                         $10::timestamptz[], $11::timestamptz[], $12::timestamptz[])
        AS c (customer_id, points, order_id, reason, rules, expires_at, entry_available_at,
              lot_available_at)
),
entry AS (
    INSERT INTO ledger_entries (store_id, customer_id, kind, points, order_id, reason, rules,
                                program_version, expires_at, available_at, created_at)
    SELECT $1, customer_id, $2, points, order_id, reason, rules::jsonb, $3, expires_at,
           entry_available_at, $4
    FROM credit
    ORDER BY customer_id
    RETURNING entry_id, customer_id
),
lot AS (
    INSERT INTO point_lots (store_id, customer_id, entry_id, order_id, points, remaining,
                            available_at, expires_at)
    SELECT $1, credit.customer_id, entry.entry_id, credit.order_id, credit.points, credit.points,
           credit.lot_available_at, credit.expires_at
    FROM credit JOIN entry USING (customer_id)
    RETURNING lot_id, customer_id
),
member AS (
    UPDATE members m SET balance = m.balance + credit.points, updated_at = now()
    FROM credit
    WHERE m.store_id = $1 AND m.customer_id = credit.customer_id
    RETURNING m.customer_id, m.balance
)
"""
_ANNOUNCE = """
, announced AS (
    INSERT INTO outbox (store_id, customer_id, event_type, payload)
    SELECT $1, member.customer_id, 'points.changed',
           jsonb_build_object('store_id', $1::text, 'customer_id', member.customer_id,
                              'delta', credit.points, 'balance', member.balance, 'reason', credit.reason)
    FROM member JOIN credit USING (customer_id)
    ORDER BY member.customer_id
)
"""
_EARN_RESULT = """
SELECT customer_id, entry.entry_id, lot.lot_id, member.balance
FROM entry JOIN lot USING (customer_id) JOIN member USING (customer_id)
"""
_EARN = _EARN_WRITES + _EARN_RESULT
_EARN_ANNOUNCED = _EARN_WRITES + _ANNOUNCE + _EARN_RESULT
# Take up to $3 points from the member's open lots, nearest expiry first (never-expiring last),
# and record each take against entry $4. Lots of order $5 go first when given (a reversal takes
# back the order's own points before anything else); $6 limits to lots available by then.
# The "own order first" key must be false, not null, for other lots and for every lot when $5 is
# null: `IS NOT DISTINCT FROM NULL` would put every order-less lot (adjustments) first, and a
# null sorts first under DESC.
_CONSUME = """
WITH ordered AS (
    SELECT lot_id, remaining,
           sum(remaining) OVER (
               ORDER BY ($5::text IS NOT NULL AND order_id IS NOT DISTINCT FROM $5) DESC,
                        expires_at NULLS LAST, lot_id
           ) - remaining AS before
    FROM point_lots
    WHERE store_id = $1 AND customer_id = $2 AND remaining > 0
      AND ($6::timestamptz IS NULL OR available_at <= $6)
      AND ($7::bigint IS NULL OR lot_id = $7)
),
taken AS (
    SELECT lot_id, least(remaining, $3 - before) AS points FROM ordered WHERE before < $3
),
updated AS (
    UPDATE point_lots AS l SET remaining = l.remaining - taken.points
    FROM taken WHERE l.lot_id = taken.lot_id
    RETURNING l.lot_id, taken.points
)
INSERT INTO lot_consumptions (entry_id, lot_id, points)
SELECT $4, lot_id, points FROM updated
RETURNING points
"""
_OPEN_POINTS = """
SELECT coalesce(sum(remaining), 0)::bigint FROM point_lots
WHERE store_id = $1 AND customer_id = $2 AND remaining > 0 AND ($3::timestamptz IS NULL OR available_at <= $3)
"""
_POINT_TOTALS = """
SELECT coalesce(sum(remaining) FILTER (WHERE available_at <= $3), 0)::bigint AS available,
       coalesce(sum(remaining) FILTER (WHERE available_at > $3), 0)::bigint AS pending
FROM point_lots WHERE store_id = $1 AND customer_id = $2 AND remaining > 0
"""
_LIST = """
SELECT entry_id, kind, points, order_id, refund_id, redemption_id, reason, rules, program_version,
       expires_at, available_at, created_at
FROM ledger_entries
WHERE store_id = $1 AND customer_id = $2 AND ($3::bigint IS NULL OR entry_id < $3)
ORDER BY entry_id DESC
LIMIT $4
"""
_EXPIRING = """
SELECT sum(remaining)::bigint AS points, expires_at FROM point_lots
WHERE store_id = $1 AND customer_id = $2 AND remaining > 0 AND expires_at > $3 AND expires_at <= $4
GROUP BY expires_at ORDER BY expires_at
"""
# Members first, in a fixed order, as every other ledger change does: no deadlock with ingestion.
_LOCK_MEMBERS_WITH_DUE = """
SELECT customer_id FROM members
WHERE store_id = $1 AND customer_id IN (
    SELECT DISTINCT customer_id FROM point_lots
    WHERE store_id = $1 AND remaining > 0 AND expires_at <= $2
    LIMIT $3
)
ORDER BY customer_id
FOR UPDATE
"""
# One `expire` entry per member for all their due lots, set-based; a lot expires once (remaining → 0).
_EXPIRE = """
WITH due AS (
    SELECT lot_id, customer_id, remaining FROM point_lots
    WHERE store_id = $1 AND customer_id = ANY($3::text[]) AND remaining > 0 AND expires_at <= $2
),
per_member AS (
    SELECT customer_id, sum(remaining)::bigint AS points FROM due GROUP BY customer_id
),
entries AS (
    INSERT INTO ledger_entries (store_id, customer_id, kind, points, reason, created_at)
    SELECT $1, customer_id, 'expire', -points, points || ' points expired', $2 FROM per_member
    RETURNING entry_id, customer_id, points
),
emptied AS (
    UPDATE point_lots AS l SET remaining = 0 FROM due WHERE l.lot_id = due.lot_id RETURNING l.lot_id
),
consumed AS (
    INSERT INTO lot_consumptions (entry_id, lot_id, points)
    SELECT entries.entry_id, due.lot_id, due.remaining FROM due JOIN entries USING (customer_id)
),
balances AS (
    UPDATE members AS m SET balance = m.balance + entries.points, updated_at = now()
    FROM entries WHERE m.store_id = $1 AND m.customer_id = entries.customer_id
    RETURNING m.customer_id, m.balance
)
SELECT entries.customer_id, -entries.points AS points, balances.balance
FROM entries JOIN balances USING (customer_id)
ORDER BY entries.customer_id
"""
_STORES_WITH_DUE = "SELECT DISTINCT store_id FROM point_lots WHERE remaining > 0 AND expires_at <= $1"


async def insert_entry(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    kind: str,
    points: int,
    reason: str,
    now: datetime,
    order_id: str | None = None,
    refund_id: str | None = None,
    redemption_id: str | None = None,
    rules: tuple[str, ...] | list[str] = (),
    program_version: int | None = None,
    expires_at: datetime | None = None,
    available_at: datetime | None = None,
) -> int:
    entry_id: int = await conn.fetchval(
        _INSERT_ENTRY,
        store_id,
        customer_id,
        kind,
        points,
        order_id,
        refund_id,
        redemption_id,
        reason,
        list(rules),
        program_version,
        expires_at,
        available_at,
        now,
    )
    return entry_id


class Credit(msgspec.Struct, frozen=True, kw_only=True):
    """Points to credit to one member as a new lot."""

    customer_id: str
    points: int
    reason: str
    order_id: str | None
    rules: Sequence[str]
    expires_at: datetime | None
    available_at: datetime
    pending: bool
    """The points wait until `available_at` (the entry says so too)."""


class Earned(msgspec.Struct, frozen=True):
    entry_id: int
    lot_id: int
    balance: int


_encode_rules = msgspec.json.Encoder().encode


async def earn(
    conn: Connection,
    *,
    store_id: str,
    kind: str,
    program_version: int | None,
    now: datetime,
    credits: Sequence[Credit],
    announce: bool,
) -> dict[str, Earned]:
    """Write each credit's entry and lot and add it to its member's balance; with `announce`, also
    emit `points.changed`. Returns the entry, the lot and the new balance by member (customer ids
    must be distinct)."""
    columns = unnest_columns(
        [
            (
                credit.customer_id,
                credit.points,
                credit.order_id,
                credit.reason,
                _encode_rules(list(credit.rules)).decode(),
                credit.expires_at,
                credit.available_at if credit.pending else None,
                credit.available_at,
            )
            for credit in credits
        ],
        8,
    )
    rows = await conn.fetch(
        _EARN_ANNOUNCED if announce else _EARN, store_id, kind, program_version, now, *columns
    )
    return {row["customer_id"]: Earned(row["entry_id"], row["lot_id"], row["balance"]) for row in rows}


async def consume(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    points: int,
    entry_id: int,
    order_first: str | None = None,
    available_by: datetime | None = None,
    lot_id: int | None = None,
) -> int:
    """Consume up to `points` from open lots; returns how many were found."""
    rows = await conn.fetch(
        _CONSUME, store_id, customer_id, points, entry_id, order_first, available_by, lot_id
    )
    return sum(row["points"] for row in rows)


async def open_points(
    conn: Connection, *, store_id: str, customer_id: str, available_by: datetime | None
) -> int:
    """Points in open lots (only those spendable by `available_by`, when given)."""
    points: int = await conn.fetchval(_OPEN_POINTS, store_id, customer_id, available_by)
    return points


async def point_totals(conn: Connection, *, store_id: str, customer_id: str, now: datetime) -> PointTotals:
    """The member's open points, split into spendable now and pending."""
    row = await conn.fetchrow(_POINT_TOTALS, store_id, customer_id, now)
    return msgspec.convert(row, PointTotals, from_attributes=True)


async def list_entries(
    conn: Connection, *, store_id: str, customer_id: str, before: int | None, limit: int
) -> list[EntryRow]:
    rows = await conn.fetch(_LIST, store_id, customer_id, before, limit)
    return msgspec.convert(rows, list[EntryRow], from_attributes=True)


async def expiring(
    conn: Connection, *, store_id: str, customer_id: str, after: datetime, until: datetime
) -> list[ExpiringPoints]:
    rows = await conn.fetch(_EXPIRING, store_id, customer_id, after, until)
    return msgspec.convert(rows, list[ExpiringPoints], from_attributes=True)


async def expire_batch(conn: Connection, *, store_id: str, now: datetime, members: int) -> list[Expired]:
    """Expire every due lot of up to `members` members; empty when none is left."""
    locked = [row["customer_id"] for row in await conn.fetch(_LOCK_MEMBERS_WITH_DUE, store_id, now, members)]
    if not locked:
        return []
    rows = await conn.fetch(_EXPIRE, store_id, now, locked)
    return msgspec.convert(rows, list[Expired], from_attributes=True)


async def stores_with_due_lots(conn: Connection, *, now: datetime) -> list[str]:
    return [row["store_id"] for row in await conn.fetch(_STORES_WITH_DUE, now)]
