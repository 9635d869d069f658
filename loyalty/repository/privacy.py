"""A member's data for export, and its erasure. Also the change log a member's version counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection


class ChangeRow(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    kinds: list[str]
    changed_at: datetime


_CHANGES = """
SELECT version, kinds, changed_at FROM member_changes
WHERE store_id = $1 AND customer_id = $2 AND version > $3 ORDER BY version LIMIT $4
"""
# Every table that holds a member's rows, as JSON; the store id is left out (it is the caller's).
_EXPORT = """
SELECT
    (SELECT to_jsonb(m) - 'store_id' - 'version_tx' FROM members m WHERE store_id = $1 AND customer_id = $2),
    (SELECT coalesce(jsonb_agg((to_jsonb(o) - 'store_id') || jsonb_build_object('lines',
        (SELECT coalesce(jsonb_agg(to_jsonb(l) - 'store_id' ORDER BY l.line_id), '[]') FROM order_lines l
         WHERE l.store_id = o.store_id AND l.order_id = o.order_id)) ORDER BY o.placed_at), '[]')
     FROM orders o WHERE store_id = $1 AND customer_id = $2),
    (SELECT coalesce(jsonb_agg(to_jsonb(e) - 'store_id' ORDER BY e.entry_id), '[]')
     FROM ledger_entries e WHERE store_id = $1 AND customer_id = $2),
    (SELECT coalesce(jsonb_agg(to_jsonb(r) - 'store_id' ORDER BY r.created_at), '[]')
     FROM redemptions r WHERE store_id = $1 AND customer_id = $2),
    (SELECT coalesce(jsonb_agg(to_jsonb(t) - 'store_id' ORDER BY t.change_id), '[]')
     FROM tier_changes t WHERE store_id = $1 AND customer_id = $2),
    (SELECT coalesce(jsonb_agg(to_jsonb(p) - 'store_id' ORDER BY p.change_id), '[]')
     FROM preference_changes p WHERE store_id = $1 AND customer_id = $2),
    (SELECT coalesce(jsonb_agg((to_jsonb(c) - 'store_id') || jsonb_build_object('events',
        (SELECT coalesce(jsonb_agg(to_jsonb(e) - 'store_id' ORDER BY e.event_id), '[]') FROM case_events e
         WHERE e.store_id = c.store_id AND e.case_id = c.case_id)) ORDER BY c.opened_at), '[]')
     FROM cases c WHERE store_id = $1 AND customer_id = $2),
    (SELECT coalesce(jsonb_agg(to_jsonb(a) - 'store_id' ORDER BY a.action_id), '[]')
     FROM care_actions a WHERE store_id = $1 AND customer_id = $2)
"""
# Erasure keeps what the books need (ledger, orders, redemptions, case facts and timings) under the
# storefront's opaque customer id, and removes what identifies or describes the person.
_ERASE_MEMBER = """
UPDATE members SET email = NULL, first_name = NULL, last_name = NULL, birthday = NULL,
    marketing_consent = false, preferences = '{}'::jsonb, erased_at = $3, updated_at = $3
WHERE store_id = $1 AND customer_id = $2 AND erased_at IS NULL
RETURNING customer_id
"""
_ERASE_PREFERENCE_LOG = "DELETE FROM preference_changes WHERE store_id = $1 AND customer_id = $2"
_ERASE_CASES = """
UPDATE cases SET subject = '[erased]', satisfaction_comment = NULL WHERE store_id = $1 AND customer_id = $2
"""
_ERASE_CASE_EVENTS = "UPDATE case_events SET body = NULL WHERE store_id = $1 AND customer_id = $2"
# A care action's reason and message name the member and their dates ("Happy birthday, Ann!");
# what it cost the budget and what it led to stay for the report.
_ERASE_CARE = """
UPDATE care_actions SET reason = '[erased]', message = '[erased]' WHERE store_id = $1 AND customer_id = $2
"""


async def changes(
    conn: Connection, *, store_id: str, customer_id: str, since: int, limit: int
) -> list[ChangeRow]:
    """The member's changes after version `since`, oldest first."""
    rows = await conn.fetch(_CHANGES, store_id, customer_id, since, limit)
    return [msgspec.convert(row, ChangeRow, from_attributes=True) for row in rows]


async def export(conn: Connection, *, store_id: str, customer_id: str) -> dict[str, Any] | None:
    """Everything kept about the member, by table; None for an unknown member."""
    row = await conn.fetchrow(_EXPORT, store_id, customer_id)
    if row is None or row[0] is None:
        return None
    names = (
        "member",
        "orders",
        "ledger",
        "redemptions",
        "tier_changes",
        "preference_changes",
        "cases",
        "care_actions",
    )
    return dict(zip(names, row, strict=True))


async def erase(conn: Connection, *, store_id: str, customer_id: str, now: datetime) -> bool:
    """Remove the member's personal data; False when unknown or already erased."""
    if await conn.fetchval(_ERASE_MEMBER, store_id, customer_id, now) is None:
        return False
    await conn.execute(_ERASE_PREFERENCE_LOG, store_id, customer_id)
    await conn.execute(_ERASE_CASES, store_id, customer_id)
    await conn.execute(_ERASE_CASE_EVENTS, store_id, customer_id)
    await conn.execute(_ERASE_CARE, store_id, customer_id)
    return True
