"""The care scan in one set-based statement: candidates per trigger, restraint, actions, outbox.

Parameters: $1 … $7 as in `loyalty/repository/tiers.py` (store, now, metric, window, grace, level
codes, thresholds: `tier_within_reach` reads the tiers' own `evaluated` CTE), $8 the store's time
zone, $9 the enabled triggers' settings (jsonb keyed by trigger; a trigger absent from it yields
nothing), $10 the monthly gift budget, $11 the gift cooldown days, $12 the message cap days,
$13 deliver_after (now, or the end of the quiet hours), $14 the trigger priority (text[]),
$15 … $18 the needs (customer, product, due_at, confidence) for `replenish`, $19 … $21 the
recommendations (customer, product, reason) for `recommended_next`.

Period keys (the idempotency of each trigger): birthday and anniversary the year of the day
celebrated; milestone `orders-N`; tier_welcome `change-<id>`; win_back `after-<last order date>`
(one per lapse); tier_within_reach `<next level>:<month>`; points_expiring `expiry-<first expiry
date>`; service_recovery `case-<id>`; replenish `week-<ISO week>`; recommended_next `month-<month>`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection
from loyalty.repository.tiers import EVALUATED_ALL

MILESTONE_LOOKBACK_DAYS = 7
"""A milestone order placed within this many days still counts (a scan may have been missed)."""
RECOVERY_LOOKBACK_DAYS = 14
ATTRIBUTION_DAYS = 14

_CLOCK = """
, k AS (
    SELECT ($2::timestamptz AT TIME ZONE $8::text)::date AS today,
           date_trunc('month', $2::timestamptz AT TIME ZONE $8::text)::date AS month_start
),
mem AS (
    SELECT customer_id, coalesce(first_name, 'friend') AS name, birthday, marketing_consent,
           (created_at AT TIME ZONE $8::text)::date AS joined
    FROM members WHERE store_id = $1::text AND erased_at IS NULL
),
gaps AS (
    SELECT customer_id, placed_at, subtotal - refunded AS net,
           extract(epoch FROM placed_at - lag(placed_at) OVER (PARTITION BY customer_id ORDER BY placed_at))
               AS gap
    FROM orders
    WHERE store_id = $1::text AND status = 'paid' AND placed_at <= $2::timestamptz
),
order_stats AS (
    SELECT customer_id, count(*) AS orders,
           count(*) FILTER (WHERE placed_at <= $2::timestamptz - make_interval(days => {milestone_days}))
               AS orders_before,
           max(placed_at) AS last_at,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median_gap,
           coalesce(sum(net) FILTER (WHERE placed_at > $2::timestamptz - interval '365 days'), 0) AS value
    FROM gaps GROUP BY customer_id
)
"""

# Each branch: (customer_id, trigger, period_key, reason, message, product_ids, expires_at).
_CANDIDATES = """
, candidates AS (
    SELECT m.customer_id, 'birthday' AS trigger, y::text AS period_key,
           format('birthday on %s', care_yearly_date(m.birthday, y)) AS reason,
           format('Happy birthday, %s!', m.name) AS message, '{{}}'::text[] AS product_ids,
           NULL::timestamptz AS expires_at
    FROM mem m, k,
         LATERAL (VALUES (extract(year FROM k.today)::int), (extract(year FROM k.today)::int + 1)) v (y)
    WHERE $9::jsonb ? 'birthday' AND m.birthday IS NOT NULL
      AND care_yearly_date(m.birthday, y)
          BETWEEN k.today AND k.today + ($9::jsonb #>> '{{birthday,days_before}}')::int
    UNION ALL
    SELECT m.customer_id, 'anniversary', extract(year FROM k.today)::text,
           format('%s year(s) a member', extract(year FROM k.today)::int - extract(year FROM m.joined)::int),
           format('Thank you for another year with us, %s!', m.name), '{{}}', NULL
    FROM mem m, k
    WHERE $9::jsonb ? 'anniversary' AND extract(year FROM k.today) > extract(year FROM m.joined)
      AND care_yearly_date(m.joined, extract(year FROM k.today)::int) = k.today
    UNION ALL
    SELECT s.customer_id, 'milestone', 'orders-' || ms.n, format('order number %s', ms.n),
           format('Order number %s: thank you!', ms.n), '{{}}', NULL
    FROM order_stats s, LATERAL (
        SELECT max(x::int) AS n FROM jsonb_array_elements_text($9::jsonb #> '{{milestone,orders}}') x
        WHERE x::int > s.orders_before AND x::int <= s.orders
    ) ms
    WHERE $9::jsonb ? 'milestone' AND ms.n IS NOT NULL
    UNION ALL
    SELECT c.customer_id, 'tier_welcome', 'change-' || c.change_id, format('upgraded to %s', c.to_tier),
           format('Welcome to %s!', c.to_tier), '{{}}', NULL
    FROM tier_changes c
    WHERE $9::jsonb ? 'tier_welcome' AND c.store_id = $1::text AND c.reason LIKE 'upgrade%'
      AND c.created_at <= $2::timestamptz
      AND c.created_at > (
          SELECT CASE WHEN s.last_scan_at IS NULL OR s.last_scan_at > $2::timestamptz
                      THEN $2::timestamptz - interval '1 day'
                      ELSE greatest(s.last_scan_at, $2::timestamptz - interval '7 days') END
          FROM (SELECT max(last_scan_at) AS last_scan_at FROM care_scans WHERE store_id = $1::text) s)
    UNION ALL
    SELECT s.customer_id, 'win_back', 'after-' || (s.last_at AT TIME ZONE $8::text)::date,
           format('no order for %s days, usually one every %s',
                  extract(day FROM $2::timestamptz - s.last_at), round(s.median_gap / 86400)),
           'We miss you!', '{{}}', NULL
    FROM order_stats s
    WHERE $9::jsonb ? 'win_back' AND s.orders >= 3 AND s.median_gap > 0
      AND extract(epoch FROM $2::timestamptz - s.last_at)
          > s.median_gap * ($9::jsonb #>> '{{win_back,overdue_factor}}')::float8
    UNION ALL
    SELECT e.customer_id, 'tier_within_reach', n.code || ':' || to_char(k.today, 'YYYY-MM'),
           format('%s %s away from %s', n.threshold - e.metric, $3::text, n.code),
           format('You are close to %s!', n.code), '{{}}', NULL
    FROM evaluated e, k, LATERAL (
        SELECT ($6::text[])[array_position($6::text[], e.to_tier) + 1] AS code,
               ($7::bigint[])[array_position($6::text[], e.to_tier) + 1] AS threshold
    ) n
    WHERE $9::jsonb ? 'tier_within_reach' AND n.code IS NOT NULL AND e.metric < n.threshold
      AND e.metric >= n.threshold * (1 - ($9::jsonb #>> '{{tier_within_reach,within_percent}}')::float8 / 100)
    UNION ALL
    SELECT l.customer_id, 'points_expiring',
           'expiry-' || (min(l.expires_at) AT TIME ZONE $8::text)::date,
           format('%s points expire from %s', sum(l.remaining),
                  (min(l.expires_at) AT TIME ZONE $8::text)::date),
           format('%s of your points expire soon', sum(l.remaining)), '{{}}', min(l.expires_at)
    FROM point_lots l
    WHERE $9::jsonb ? 'points_expiring' AND l.store_id = $1::text AND l.remaining > 0
      AND l.expires_at > $2::timestamptz
      AND l.expires_at <= $2::timestamptz
          + make_interval(days => ($9::jsonb #>> '{{points_expiring,days_before}}')::int)
    GROUP BY l.customer_id
    UNION ALL
    SELECT r.customer_id, 'service_recovery', 'case-' || r.case_id,
           coalesce(r.reason, 'a service case resolved'), 'We are sorry, and thank you for your patience.',
           '{{}}', NULL
    FROM resolved_cases_for_recovery($1::text, $2::timestamptz - make_interval(days => {recovery_days}),
                                     $2::timestamptz) r
    WHERE $9::jsonb ? 'service_recovery'
    UNION ALL
    SELECT n.customer_id, 'replenish', 'week-' || to_char(k.today, 'IYYY-IW'),
           format('running low soon: %s', string_agg(n.product_id, ', ' ORDER BY n.due_at)),
           'Time to restock?', array_agg(n.product_id ORDER BY n.due_at),
           max(n.due_at) + interval '7 days'
    FROM unnest($15::text[], $16::text[], $17::timestamptz[], $18::float8[])
             n (customer_id, product_id, due_at, confidence), k
    WHERE $9::jsonb ? 'replenish' AND n.due_at > $2::timestamptz - interval '7 days'
      AND n.due_at <= $2::timestamptz
          + make_interval(days => ($9::jsonb #>> '{{replenish,days_before}}')::int)
      AND n.confidence >= ($9::jsonb #>> '{{replenish,min_confidence}}')::float8
    GROUP BY n.customer_id, k.today
    UNION ALL
    SELECT r.customer_id, 'recommended_next', 'month-' || to_char(k.today, 'YYYY-MM'), min(r.reason),
           'Picked for you', array_agg(r.product_id), NULL
    FROM unnest($19::text[], $20::text[], $21::text[]) r (customer_id, product_id, reason), k
    WHERE $9::jsonb ? 'recommended_next'
    GROUP BY r.customer_id, k.today
)
"""

# Restraint, in order: consent and the message cap (service recovery exempt), not already issued
# for this period, the gift cooldown; then one gift per member, the budget spent by priority, and
# one action per member (a gift before any suggestion).
_RESTRAINT = """
, eligible AS (
    SELECT c.customer_id, c.trigger, c.period_key, c.reason, c.message, c.product_ids,
           coalesce(c.expires_at, $13::timestamptz + interval '14 days') AS expires_at,
           $9::jsonb -> c.trigger ->> 'kind' AS kind,
           ($9::jsonb -> c.trigger ->> 'cost')::bigint AS cost,
           array_position($14::text[], c.trigger) AS priority,
           coalesce(s.value, 0) AS value
    FROM candidates c
    JOIN mem m ON m.customer_id = c.customer_id
    LEFT JOIN order_stats s ON s.customer_id = c.customer_id
    WHERE (c.trigger = 'service_recovery' OR m.marketing_consent)
      AND NOT EXISTS (
          SELECT 1 FROM care_actions a
          WHERE a.store_id = $1::text AND a.customer_id = c.customer_id
            AND a.trigger = c.trigger AND a.period_key = c.period_key)
      AND (c.trigger = 'service_recovery' OR NOT EXISTS (
          SELECT 1 FROM care_actions a
          WHERE a.store_id = $1::text AND a.customer_id = c.customer_id
            AND a.created_at > $2::timestamptz - make_interval(days => $12::int)))
      AND ($9::jsonb -> c.trigger ->> 'kind' = 'suggestion' OR c.trigger = 'service_recovery'
           OR NOT EXISTS (
               SELECT 1 FROM care_actions a
               WHERE a.store_id = $1::text AND a.customer_id = c.customer_id AND a.kind = 'gift'
                 AND a.created_at > $2::timestamptz - make_interval(days => $11::int)))
),
gift_best AS (
    SELECT DISTINCT ON (customer_id) *
    FROM eligible WHERE kind = 'gift'
    ORDER BY customer_id, priority
),
gifts_ok AS (
    SELECT g.*
    FROM (
        SELECT gift_best.*,
               sum(cost) OVER (ORDER BY priority, value DESC, customer_id ROWS UNBOUNDED PRECEDING) AS running
        FROM gift_best
    ) g
    WHERE g.running + (SELECT coalesce(sum(a.cost), 0) FROM care_actions a, k
                       WHERE a.store_id = $1::text AND a.budget_month = k.month_start) <= $10::bigint
),
chosen AS (
    SELECT DISTINCT ON (customer_id) customer_id, trigger, period_key, reason, message, product_ids,
           expires_at, kind, cost
    FROM (
        SELECT customer_id, trigger, period_key, reason, message, product_ids, expires_at, kind, cost,
               priority, 0 AS kind_rank
        FROM gifts_ok
        UNION ALL
        SELECT customer_id, trigger, period_key, reason, message, product_ids, expires_at, kind, cost,
               priority, 1
        FROM eligible WHERE kind = 'suggestion'
    ) x
    ORDER BY customer_id, kind_rank, priority
)
"""

# The event body, from a care_actions row (or its RETURNING) named r.
PAYLOAD = """
jsonb_build_object('store_id', r.store_id, 'customer_id', r.customer_id, 'action_id', r.action_id,
                   'trigger', r.trigger, 'reason', r.reason, 'message', r.message,
                   'deliver_after', r.deliver_after, 'expires_at', r.expires_at)
|| CASE r.kind
       WHEN 'gift' THEN jsonb_build_object('gift', r.gift, 'cost', r.cost)
       ELSE jsonb_build_object('suggestion_id', r.action_id::text, 'kind', r.trigger,
                               'product_ids', to_jsonb(r.product_ids))
   END
"""
EVENT_TYPE = "CASE r.kind WHEN 'gift' THEN 'gift.triggered' ELSE 'suggestion.created' END"
ACTION_COLUMNS = (
    "action_id, store_id, customer_id, kind, trigger, gift, product_ids, reason, message, cost, "
    "deliver_after, expires_at, emitted_at"
)

_INSERT = f"""
, inserted AS (
    INSERT INTO care_actions (store_id, customer_id, kind, trigger, period_key, gift, product_ids, reason,
                              message, cost, budget_month, deliver_after, emitted_at, expires_at, created_at)
    SELECT $1::text, c.customer_id, c.kind, c.trigger, c.period_key, $9::jsonb -> c.trigger -> 'gift',
           c.product_ids, c.reason, c.message, c.cost, k.month_start, $13::timestamptz,
           CASE WHEN $13::timestamptz <= $2::timestamptz THEN $2::timestamptz END, c.expires_at,
           $2::timestamptz
    FROM chosen c, k
    ON CONFLICT (store_id, customer_id, trigger, period_key) DO NOTHING
    RETURNING {ACTION_COLUMNS}
),
events AS (
    INSERT INTO outbox (store_id, customer_id, event_type, payload, created_at)
    SELECT $1::text, r.customer_id, {EVENT_TYPE}, {PAYLOAD}, $2::timestamptz
    FROM inserted r WHERE r.emitted_at IS NOT NULL
)
SELECT trigger, kind, count(*)::int AS actions, sum(cost)::bigint AS cost,
       count(*) FILTER (WHERE emitted_at IS NOT NULL)::int AS emitted
FROM inserted GROUP BY trigger, kind ORDER BY trigger
"""  # noqa: S608 - only module constants are interpolated

_SCAN = (
    EVALUATED_ALL
    + _CLOCK.format(milestone_days=MILESTONE_LOOKBACK_DAYS)
    + _CANDIDATES.format(recovery_days=RECOVERY_LOOKBACK_DAYS)
    + _RESTRAINT
    + _INSERT
)

# Per store, so concurrent scans of one store queue (the budget is a read-then-write), while
# scans of different stores run in parallel. hashtext is stable for a given text.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('care.scan:' || $1::text))"
_MARK_SCANNED = """
INSERT INTO care_scans (store_id, last_scan_at) VALUES ($1, $2)
ON CONFLICT (store_id) DO UPDATE SET last_scan_at = EXCLUDED.last_scan_at
"""
_WORK_MEM = "SELECT set_config('work_mem', '64MB', true)"


class TriggerCount(msgspec.Struct, frozen=True, kw_only=True):
    """Actions one scan issued for one trigger."""

    trigger: str
    kind: str
    actions: int
    cost: int
    """Minor units charged to the gift budget."""
    emitted: int
    """Of them, written to the outbox at once (the rest wait for the quiet hours to end)."""


async def lock_store(conn: Connection, *, store_id: str) -> None:
    """Serialise scans of one store until the transaction ends."""
    await conn.execute(_LOCK, store_id)


async def scan(
    conn: Connection,
    *,
    rule_args: list[Any],
    timezone: str,
    triggers: dict[str, dict[str, Any]],
    budget: int,
    cooldown_days: int,
    cap_days: int,
    deliver_after: datetime,
    priority: list[str],
    needs: tuple[list[str], list[str], list[datetime], list[float]],
    recommendations: tuple[list[str], list[str], list[str]],
) -> list[TriggerCount]:
    """Run the scan statement; returns what it issued, per trigger. `rule_args` is $1 … $7."""
    store_id, now = rule_args[0], rule_args[1]
    await conn.execute(_WORK_MEM)
    rows = await conn.fetch(
        _SCAN,
        *rule_args,
        timezone,
        triggers,
        budget,
        cooldown_days,
        cap_days,
        deliver_after,
        priority,
        *needs,
        *recommendations,
    )
    await conn.execute(_MARK_SCANNED, store_id, now)
    return msgspec.convert(rows, list[TriggerCount], from_attributes=True)
