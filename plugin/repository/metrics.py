"""SQL of the gauges read at scrape time: the outbound backlog, care budgets, live models.

One statement each, over partial indexes or one row per store, so a scrape costs a few
milliseconds whatever the size of the ledger or the delivery history. Read-only; no transaction.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from loyalty.repository import Connection


class Backlog(msgspec.Struct, frozen=True, kw_only=True):
    unfanned: int
    """Outbox events not fanned out to deliveries yet."""
    pending: int
    """Deliveries not tried yet (or replayed)."""
    failed: int
    """Deliveries tried and failed, with a retry scheduled."""
    oldest: datetime | None
    """When the oldest event still waiting for one of those (by event id) was written."""


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    store_id: str
    budget: int
    """The live program's monthly gift budget, minor units."""
    used: int
    """Charged to it in the store-local month of `now`."""


class LiveModel(msgspec.Struct, frozen=True, kw_only=True):
    store_id: str
    version: int
    trained_at: datetime


# Both counts come from partial indexes (outbox_unfanned, deliveries_queue): they read the backlog,
# not the history. The oldest waiting event is the lower of the two minimum event ids.
_BACKLOG = """
WITH unfanned AS (
    SELECT count(*) AS n, min(event_id) AS first FROM outbox WHERE fanned_out_at IS NULL
), waiting AS (
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           min(event_id) AS first
    FROM deliveries WHERE status IN ('pending', 'failed')
)
SELECT unfanned.n AS unfanned, waiting.pending, waiting.failed,
       (SELECT created_at FROM outbox WHERE event_id = least(unfanned.first, waiting.first)) AS oldest
FROM unfanned, waiting
"""
# The month as the care scan charges it: store-local (see loyalty/repository/care.py).
_BUDGETS = """
SELECT s.store_id,
       coalesce((p.document -> 'care' ->> 'gift_budget_per_month')::bigint, 0) AS budget,
       coalesce(used.cost, 0)::bigint AS used
FROM stores s
LEFT JOIN programs p ON p.store_id = s.store_id AND p.version = s.program_version
LEFT JOIN LATERAL (
    SELECT sum(a.cost) AS cost FROM care_actions a
    WHERE a.store_id = s.store_id AND a.cost > 0
      AND a.budget_month = date_trunc('month', $1::timestamptz AT TIME ZONE s.timezone)::date
) used ON true
WHERE coalesce((p.document -> 'care' ->> 'gift_budget_per_month')::bigint, 0) > 0 OR used.cost > 0
ORDER BY s.store_id
"""
_LIVE_MODELS = """
SELECT l.store_id, l.version, m.trained_at
FROM recommender_live l JOIN recommender_models m USING (store_id, version)
ORDER BY l.store_id
"""


async def backlog(conn: Connection) -> Backlog:
    row = await conn.fetchrow(_BACKLOG)
    return msgspec.convert(row, Backlog, from_attributes=True)


async def budgets(conn: Connection, *, now: datetime) -> list[Budget]:
    rows = await conn.fetch(_BUDGETS, now)
    return msgspec.convert(rows, list[Budget], from_attributes=True)


async def live_models(conn: Connection) -> list[LiveModel]:
    rows = await conn.fetch(_LIVE_MODELS)
    return msgspec.convert(rows, list[LiveModel], from_attributes=True)
