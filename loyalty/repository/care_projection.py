"""The gift projection: what daily scans over the next days would give, without issuing anything.

One statement computes every gift trigger's candidates for every day of the window at once (the
scan's own candidate SQL, over a series of scan times), one row per member, trigger and period with
the days it can be given on, judged against the real actions, into a temporary table. Then, day by
day, the scan's own restraint runs over that day's candidates against the gifts the earlier
simulated days gave (kept in a second temporary table), and spends the budget the real and
simulated gifts leave. A day's pass is a few thousand rows however big the store: the cost is one
store-wide pass, not one per day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from loyalty.repository import Connection
from loyalty.repository.care import WORK_MEM, Rules, TriggerCount
from loyalty.repository.care_rules import CANDIDATES, CHOICE, ELIGIBLE

_CREATE = """
DROP TABLE IF EXISTS pg_temp.care_window, pg_temp.care_simulated;
CREATE TEMP TABLE care_window (
    customer_id text NOT NULL, trigger text NOT NULL, period_key text NOT NULL,
    from_t timestamptz NOT NULL, to_t timestamptz NOT NULL, value numeric NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE care_simulated (
    store_id text NOT NULL, customer_id text NOT NULL, trigger text NOT NULL, period_key text NOT NULL,
    kind text NOT NULL, cost bigint NOT NULL, budget_month date NOT NULL, created_at timestamptz NOT NULL
) ON COMMIT DROP;
CREATE INDEX ON care_simulated (customer_id);
"""
_DROP = "DROP TABLE pg_temp.care_window, pg_temp.care_simulated"

# Each gift candidate once, with the scan times it is a candidate at (a run of days: a birthday's
# days before, a milestone's or a case's lookback, a lapse until the window ends), narrowed by the
# real actions exactly as the restraint judges them: no consent (but for service recovery) or the
# period already issued, and it is out; the message cap and the gift cooldown hold it until the
# member's last action + cap days and last gift + cooldown days ("blocked while created_at > t -
# days" is "eligible from created_at + days"). What is left can only be stopped by the gifts of the
# simulated days before it. $18 cap days, $19 cooldown days.
_WINDOW_INSERT = """
, runs AS (
    SELECT customer_id, trigger, period_key, min(t) AS from_t, max(until_t) AS to_t,
           bool_or(consent) AS consent, max(value) AS value
    FROM decorated GROUP BY customer_id, trigger, period_key
)
INSERT INTO care_window (customer_id, trigger, period_key, from_t, to_t, value)
SELECT r.customer_id, r.trigger, r.period_key, w.from_t, r.to_t, r.value
FROM runs r
CROSS JOIN LATERAL (
    SELECT max(a.created_at) AS action_at, max(a.created_at) FILTER (WHERE a.kind = 'gift') AS gift_at
    FROM care_actions a WHERE a.store_id = $1::text AND a.customer_id = r.customer_id
) last
CROSS JOIN LATERAL (
    SELECT CASE WHEN r.trigger = 'service_recovery' THEN r.from_t
                ELSE greatest(r.from_t, last.action_at + make_interval(days => $18::int),
                              last.gift_at + make_interval(days => $19::int)) END AS from_t
) w
WHERE (r.trigger = 'service_recovery' OR r.consent) AND w.from_t <= r.to_t
  AND NOT EXISTS (
      SELECT 1 FROM care_actions a
      WHERE a.store_id = $1::text AND a.customer_id = r.customer_id
        AND a.trigger = r.trigger AND a.period_key = r.period_key)
"""
_WINDOW = CANDIDATES + _WINDOW_INSERT
# Temporary tables get no statistics but from ANALYZE: without them the planner takes the simulated
# gifts for a handful and joins them in nested loops (minutes at 100,000 members instead of seconds).
_ANALYZE_WINDOW = "ANALYZE pg_temp.care_window"
_ANALYZE_SIMULATED = "ANALYZE pg_temp.care_simulated"

_ISSUED = """(
    SELECT store_id, customer_id, trigger, period_key, kind, cost, budget_month, created_at
    FROM care_actions WHERE store_id = $1::text
    UNION ALL
    SELECT store_id, customer_id, trigger, period_key, kind, cost, budget_month, created_at
    FROM care_simulated
)"""
# One simulated scan: $1 store, $2 the scan time, $3 time zone, $4 triggers, $5 budget, $6 cooldown
# days, $7 cap days, $8 deliver_after, $9 priority. Its candidates passed the real actions already;
# the simulated gifts restrain them, and the budget counts both.
_DAY_INPUT = """
WITH k AS (
    SELECT ($2::timestamptz AT TIME ZONE $3::text)::date AS today,
           date_trunc('month', $2::timestamptz AT TIME ZONE $3::text)::date AS month_start
),
decorated AS (
    SELECT customer_id, trigger, period_key, '' AS reason, '' AS message, '{}'::text[] AS product_ids,
           NULL::timestamptz AS expires_at, true AS consent, value, $2::timestamptz AS t,
           $2::timestamptz AS until_t
    FROM care_window WHERE $2::timestamptz BETWEEN from_t AND to_t
)
"""
_DAY_OUTPUT = """
, simulated AS (
    INSERT INTO care_simulated (store_id, customer_id, trigger, period_key, kind, cost, budget_month,
                                created_at)
    SELECT $1::text, c.customer_id, c.trigger, c.period_key, c.kind, c.cost, k.month_start, $2::timestamptz
    FROM chosen c, k
    RETURNING trigger, kind, cost
)
SELECT trigger, kind, count(*)::int AS actions, sum(cost)::bigint AS cost, 0 AS emitted
FROM simulated GROUP BY trigger, kind ORDER BY trigger
"""
_DAY_PARAMETERS = {
    "store": "$1::text",
    "now": "$2::timestamptz",
    "triggers": "$4::jsonb",
    "budget": "$5::bigint",
    "cooldown": "$6::int",
    "cap": "$7::int",
    "deliver_after": "$8::timestamptz",
    "priority": "$9::text[]",
}
_DAY = (
    _DAY_INPUT
    + ELIGIBLE.format(**_DAY_PARAMETERS, actions="care_simulated")
    + CHOICE.format(**_DAY_PARAMETERS, actions=_ISSUED)
    + _DAY_OUTPUT
)


async def project(
    conn: Connection, *, rules: Rules, deliver_after: Sequence[datetime]
) -> list[list[TriggerCount]]:
    """What a scan a day from the rules' now (+ 0, 1 … days, one per `deliver_after`) would issue,
    per day; nothing is kept. Runs in a transaction (or a savepoint) of its own."""
    days: list[list[TriggerCount]] = []
    async with conn.transaction():
        await conn.execute(WORK_MEM)
        await conn.execute(_CREATE)
        empty: list[Any] = []
        await conn.execute(
            _WINDOW,
            *rules.rule_args,
            rules.timezone,
            rules.triggers,
            len(deliver_after),
            *[empty] * 7,
            rules.cap_days,
            rules.cooldown_days,
        )
        await conn.execute(_ANALYZE_WINDOW)
        for day, after in enumerate(deliver_after):
            rows = await conn.fetch(
                _DAY,
                rules.store_id,
                rules.now + timedelta(days=day),
                rules.timezone,
                rules.triggers,
                rules.budget,
                rules.cooldown_days,
                rules.cap_days,
                after,
                rules.priority,
            )
            days.append(msgspec.convert(rows, list[TriggerCount], from_attributes=True))
            if rows:
                await conn.execute(_ANALYZE_SIMULATED)
        await conn.execute(_DROP)
    return days
