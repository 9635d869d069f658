"""Service cases, their events, the stores' SLA policies and the case metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection


class CaseRow(msgspec.Struct, frozen=True, kw_only=True):
    case_id: str
    customer_id: str
    channel: str
    subject: str
    category: str
    priority: str
    status: str
    opened_at: datetime
    first_response_due: datetime
    resolution_due: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool
    satisfaction_score: int | None
    satisfaction_comment: str | None
    updated_at: datetime


class CaseEventRow(msgspec.Struct, frozen=True, kw_only=True):
    event_id: int
    case_id: str
    kind: str
    channel: str
    actor: str
    body: str | None
    status: str | None
    created_at: datetime


class MetricsRow(msgspec.Struct, frozen=True, kw_only=True):
    channel: str | None
    category: str | None
    cases: int
    open: int
    median_first_response_seconds: float | None
    breached: int
    mean_satisfaction: float | None
    rated: int


_COLUMNS = """case_id, customer_id, channel, subject, category, priority, status, opened_at,
    first_response_due, resolution_due, first_response_at, resolved_at, closed_at,
    first_response_breached, resolution_breached, satisfaction_score, satisfaction_comment, updated_at"""
_INSERT = f"""
INSERT INTO cases (store_id, case_id, customer_id, channel, subject, category, priority, status, opened_at,
                   first_response_due, resolution_due, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $8)
RETURNING {_COLUMNS}
"""  # noqa: S608
_GET = f"SELECT {_COLUMNS} FROM cases WHERE store_id = $1 AND case_id = $2"  # noqa: S608
_LOCK = _GET + " FOR UPDATE"
_UPDATE = f"""
UPDATE cases SET status = $3, first_response_at = $4, resolved_at = $5, closed_at = $6,
    first_response_breached = $7, resolution_breached = $8, resolution_due = $9,
    satisfaction_score = $10, satisfaction_comment = $11, updated_at = $12
WHERE store_id = $1 AND case_id = $2
RETURNING {_COLUMNS}
"""  # noqa: S608
_FOR_MEMBER = f"""
SELECT {_COLUMNS} FROM cases
WHERE store_id = $1 AND customer_id = $2 AND ($3::text[] IS NULL OR status = ANY ($3))
ORDER BY (first_response_breached OR resolution_breached) DESC, resolution_due, case_id
LIMIT $4
"""  # noqa: S608
_INSERT_EVENT = """
INSERT INTO case_events (store_id, case_id, customer_id, kind, channel, actor, body, status, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
_EVENTS = """
SELECT event_id, case_id, kind, channel, actor, body, status, created_at FROM case_events
WHERE store_id = $1 AND case_id = $2 ORDER BY event_id
"""
_MEMBER_EVENTS = """
SELECT event_id, case_id, kind, channel, actor, body, status, created_at FROM case_events
WHERE store_id = $1 AND customer_id = $2 ORDER BY event_id DESC LIMIT $3
"""
# Set-based: every due promise of the batch is flagged in one statement, its event in the next.
_FLAG_BREACHES = f"""
UPDATE cases SET
    first_response_breached = first_response_breached
        OR (first_response_at IS NULL AND first_response_due <= $2),
    resolution_breached = resolution_breached OR resolution_due <= $2,
    updated_at = $2
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM cases
    WHERE ($1::text IS NULL OR store_id = $1) AND status IN ('open', 'pending')
      AND ((NOT first_response_breached AND first_response_at IS NULL AND first_response_due <= $2)
           OR (NOT resolution_breached AND resolution_due <= $2))
    LIMIT $3 FOR UPDATE SKIP LOCKED
))
RETURNING store_id, {_COLUMNS}
"""  # noqa: S608
_INSERT_BREACH_EVENTS = """
INSERT INTO case_events (store_id, case_id, customer_id, kind, channel, actor, body, created_at)
SELECT store_id, case_id, customer_id, 'breach', 'system', 'worker', body, $4
FROM unnest($1::text[], $2::text[], $3::text[], $5::text[]) AS b (store_id, case_id, customer_id, body)
"""
_METRICS = """
SELECT channel, category, count(*)::int AS cases,
    (count(*) FILTER (WHERE status IN ('open', 'pending')))::int AS open,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - opened_at))
        FILTER (WHERE first_response_at IS NOT NULL) AS median_first_response_seconds,
    (count(*) FILTER (WHERE first_response_breached OR resolution_breached))::int AS breached,
    avg(satisfaction_score)::float8 AS mean_satisfaction,
    (count(satisfaction_score))::int AS rated
FROM cases WHERE store_id = $1 AND opened_at >= $2
GROUP BY GROUPING SETS ((), (channel), (category))
"""
_GET_POLICY = "SELECT policy FROM sla_policies WHERE store_id = $1"
_PUT_POLICY = """
INSERT INTO sla_policies (store_id, policy) VALUES ($1, $2)
ON CONFLICT (store_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()
"""
_TIMEZONE = "SELECT timezone FROM stores WHERE store_id = $1"


def _case(row: Any) -> CaseRow:
    return msgspec.convert(row, CaseRow, from_attributes=True)


async def insert(
    conn: Connection,
    *,
    store_id: str,
    case_id: str,
    customer_id: str,
    channel: str,
    subject: str,
    category: str,
    priority: str,
    opened_at: datetime,
    first_response_due: datetime,
    resolution_due: datetime,
) -> CaseRow:
    row = await conn.fetchrow(
        _INSERT,
        store_id,
        case_id,
        customer_id,
        channel,
        subject,
        category,
        priority,
        opened_at,
        first_response_due,
        resolution_due,
    )
    return _case(row)


async def get(conn: Connection, *, store_id: str, case_id: str) -> CaseRow | None:
    row = await conn.fetchrow(_GET, store_id, case_id)
    return None if row is None else _case(row)


async def lock(conn: Connection, *, store_id: str, case_id: str) -> CaseRow | None:
    """The case, row-locked until the transaction ends: events on one case apply one at a time."""
    row = await conn.fetchrow(_LOCK, store_id, case_id)
    return None if row is None else _case(row)


async def save(conn: Connection, *, store_id: str, case: CaseRow) -> CaseRow:
    """Write a case's mutable fields back."""
    row = await conn.fetchrow(
        _UPDATE,
        store_id,
        case.case_id,
        case.status,
        case.first_response_at,
        case.resolved_at,
        case.closed_at,
        case.first_response_breached,
        case.resolution_breached,
        case.resolution_due,
        case.satisfaction_score,
        case.satisfaction_comment,
        case.updated_at,
    )
    return _case(row)


async def for_member(
    conn: Connection, *, store_id: str, customer_id: str, statuses: list[str] | None, limit: int
) -> list[CaseRow]:
    """A member's cases, breached ones first, then by resolution due."""
    rows = await conn.fetch(_FOR_MEMBER, store_id, customer_id, statuses, limit)
    return [_case(row) for row in rows]


async def add_event(
    conn: Connection,
    *,
    store_id: str,
    case_id: str,
    customer_id: str,
    kind: str,
    channel: str,
    actor: str,
    body: str | None,
    status: str | None,
    at: datetime,
) -> None:
    await conn.execute(_INSERT_EVENT, store_id, case_id, customer_id, kind, channel, actor, body, status, at)


async def events(conn: Connection, *, store_id: str, case_id: str) -> list[CaseEventRow]:
    rows = await conn.fetch(_EVENTS, store_id, case_id)
    return [msgspec.convert(row, CaseEventRow, from_attributes=True) for row in rows]


async def member_events(
    conn: Connection, *, store_id: str, customer_id: str, limit: int
) -> list[CaseEventRow]:
    rows = await conn.fetch(_MEMBER_EVENTS, store_id, customer_id, limit)
    return [msgspec.convert(row, CaseEventRow, from_attributes=True) for row in rows]


async def flag_breaches(
    conn: Connection, *, store_id: str | None, now: datetime, limit: int
) -> list[tuple[str, CaseRow]]:
    """Flag up to `limit` unresolved cases whose promises fell due; (store_id, case) of each."""
    rows = await conn.fetch(_FLAG_BREACHES, store_id, now, limit)
    return [(row["store_id"], _case(row)) for row in rows]


async def log_breaches(conn: Connection, *, breaches: list[tuple[str, CaseRow, str]], at: datetime) -> None:
    """One `breach` event per (store_id, case, description), in one statement."""
    await conn.execute(
        _INSERT_BREACH_EVENTS,
        [store_id for store_id, _, _ in breaches],
        [case.case_id for _, case, _ in breaches],
        [case.customer_id for _, case, _ in breaches],
        at,
        [body for _, _, body in breaches],
    )


async def metrics(conn: Connection, *, store_id: str, since: datetime) -> list[MetricsRow]:
    """Totals of the store's cases opened since `since`: overall, by channel, by category."""
    rows = await conn.fetch(_METRICS, store_id, since)
    return [msgspec.convert(row, MetricsRow, from_attributes=True) for row in rows]


async def get_policy(conn: Connection, *, store_id: str) -> Any | None:
    return await conn.fetchval(_GET_POLICY, store_id)


async def put_policy(conn: Connection, *, store_id: str, policy: Any) -> None:
    await conn.execute(_PUT_POLICY, store_id, policy)


async def store_timezone(conn: Connection, *, store_id: str) -> str | None:
    value: str | None = await conn.fetchval(_TIMEZONE, store_id)
    return value
