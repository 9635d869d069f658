"""Member preferences (a jsonb column on members) and the log of every change that arrived."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection


class PreferenceChangeRow(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value: Any
    channel: str
    actor: str
    occurred_at: datetime
    applied: bool
    recorded_at: datetime


_LOCK = """
SELECT preferences FROM members
WHERE store_id = $1 AND customer_id = $2 AND erased_at IS NULL FOR UPDATE
"""
_GET = "SELECT preferences FROM members WHERE store_id = $1 AND customer_id = $2 AND erased_at IS NULL"
# The kind names the change in member_changes (see the members triggers in 0010_service.sql).
_MARK_KIND = "SELECT set_config('patron.change_kind', 'preferences', true)"
_UNMARK_KIND = "SELECT set_config('patron.change_kind', '', true)"
_SET = "UPDATE members SET preferences = $3, updated_at = now() WHERE store_id = $1 AND customer_id = $2"
_LOG = """
INSERT INTO preference_changes (store_id, customer_id, key, value, channel, actor, occurred_at, applied)
SELECT $1, $2, c.key, c.value, $3, $4, $5, c.applied
FROM jsonb_to_recordset($6::jsonb) AS c (key text, value jsonb, applied boolean)
"""
_HISTORY = """
SELECT key, value, channel, actor, occurred_at, applied, recorded_at FROM preference_changes
WHERE store_id = $1 AND customer_id = $2 ORDER BY change_id DESC LIMIT $3
"""


async def lock(conn: Connection, *, store_id: str, customer_id: str) -> dict[str, Any] | None:
    """The member's stored preferences, the member row locked; None for an unknown or erased member."""
    row = await conn.fetchrow(_LOCK, store_id, customer_id)
    return None if row is None else dict(row["preferences"])


async def get(conn: Connection, *, store_id: str, customer_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(_GET, store_id, customer_id)
    return None if row is None else dict(row["preferences"])


async def store(conn: Connection, *, store_id: str, customer_id: str, preferences: dict[str, Any]) -> None:
    await conn.execute(_MARK_KIND)
    await conn.execute(_SET, store_id, customer_id, preferences)
    await conn.execute(_UNMARK_KIND)


async def log_changes(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    channel: str,
    actor: str,
    occurred_at: datetime,
    changes: list[tuple[str, Any, bool]],
) -> None:
    """Record each (key, value, applied) as it arrived, in one statement."""
    await conn.execute(
        _LOG,
        store_id,
        customer_id,
        channel,
        actor,
        occurred_at,
        [{"key": key, "value": value, "applied": applied} for key, value, applied in changes],
    )


async def history(
    conn: Connection, *, store_id: str, customer_id: str, limit: int
) -> list[PreferenceChangeRow]:
    rows = await conn.fetch(_HISTORY, store_id, customer_id, limit)
    return [msgspec.convert(row, PreferenceChangeRow, from_attributes=True) for row in rows]
