"""The care scan in one set-based statement: candidates per trigger, restraint, actions, outbox.

The statement's parts are shared with the gift projection (`loyalty/repository/care_projection.py`):
the candidates are computed for a series of scan times (one for a scan, a day apart for the
projection), and the restraint reads its settings and the actions already issued through
placeholders, so both run the very same rules.

Parameters: $1 … $7 as in `loyalty/repository/tiers.py` (store, now, metric, window, grace, level
codes, thresholds: `tier_within_reach` reads the tiers' own `evaluated` CTE), $8 the store's time
zone, $9 the enabled triggers' settings (jsonb keyed by trigger; a trigger absent from it yields
nothing), $10 how many scan times (a day apart from $2) the candidates are computed for, $11 … $14
the needs (customer, product, due_at, confidence) for `replenish`, $15 … $17 the recommendations
(customer, product, reason; each member's best first) for `recommended_next`; then the restraint's
$18 the monthly gift budget, $19 the gift cooldown days, $20 the message cap days, $21 deliver_after
(now, or the end of the quiet hours), $22 the trigger priority (text[]).

Candidates at a later scan time see the store as it is at $2 (orders, cases, upgrades, lots), with
only the clock moved: dates (birthdays, anniversaries), lookbacks (a milestone order, a resolved
case) and lapses (win-back) move with each time; `tier_welcome` and the suggestions are evaluated
at $2 alone.

Period keys (the idempotency of each trigger): birthday and anniversary the year of the day
celebrated; milestone `orders-N`; tier_welcome `change-<id>`; win_back `after-<last order date>`
(one per lapse); tier_within_reach `<next level>:<month>`; points_expiring `expiry-<first expiry
date>`; service_recovery `case-<id>`; replenish `week-<ISO week>`; recommended_next `month-<month>`.
"""

from __future__ import annotations

from dataclasses import dataclass
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
, times AS (
    SELECT t, (t AT TIME ZONE $8::text)::date AS today,
           date_trunc('month', t AT TIME ZONE $8::text)::date AS month_start
    FROM generate_series($2::timestamptz, $2::timestamptz + ($10::int - 1) * interval '24 hours',
                         interval '24 hours') AS t
),
k AS (SELECT t, today, month_start FROM times WHERE t = $2::timestamptz),
span AS (
    SELECT min(t) AS first_t, max(t) AS last_t, min(today) AS first_day, max(today) AS last_day FROM times
),
mem AS (
    SELECT customer_id, coalesce(first_name, 'friend') AS name, birthday, marketing_consent,
           (created_at AT TIME ZONE $8::text)::date AS joined
    FROM members WHERE store_id = $1::text AND erased_at IS NULL
),
-- Each member's birthday and membership anniversary in the years the scan times fall in (and the next,
-- for a birthday ahead), computed once per member and year, then matched to the scan times.
yearly AS MATERIALIZED (
    SELECT m.customer_id, m.name, y, extract(year FROM m.joined)::int AS joined_year,
           care_yearly_date(m.birthday, y) AS birthday, care_yearly_date(m.joined, y) AS anniversary
    FROM mem m, span,
         generate_series(extract(year FROM span.first_day)::int, extract(year FROM span.last_day)::int + 1) y
    WHERE $9::jsonb ?| array['birthday', 'anniversary']
),
gaps AS (
    SELECT customer_id, placed_at, subtotal - refunded AS net, row_number() OVER w AS n,
           extract(epoch FROM placed_at - lag(placed_at) OVER w) AS gap
    FROM orders
    WHERE store_id = $1::text AND status = 'paid' AND placed_at <= $2::timestamptz
    WINDOW w AS (PARTITION BY customer_id ORDER BY placed_at)
),
order_stats AS (
    SELECT customer_id, count(*) AS orders, max(placed_at) AS last_at,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median_gap,
           coalesce(sum(net) FILTER (WHERE placed_at > $2::timestamptz - interval '365 days'), 0) AS value
    FROM gaps GROUP BY customer_id
)
"""

# Each branch: (customer_id, trigger, period_key, reason, message, product_ids, expires_at, t,
# until_t): a candidate at scan time t, and for a lapse (win-back), which lasts, one row at the first
# time it is overdue standing for every time until until_t (the last). A milestone is the highest
# listed order count the member reached (the Nth order placed within the lookback of t); the lower
# ones were placed earlier still.
_CANDIDATES = """
, candidates AS (
    SELECT d.customer_id, 'birthday' AS trigger, d.y::text AS period_key,
           format('birthday on %s', d.birthday) AS reason,
           format('Happy birthday, %s!', d.name) AS message, '{{}}'::text[] AS product_ids,
           NULL::timestamptz AS expires_at, k.t, k.t AS until_t
    FROM yearly d, span
    JOIN times k ON true
    WHERE $9::jsonb ? 'birthday'
      AND d.birthday BETWEEN span.first_day
                         AND span.last_day + ($9::jsonb #>> '{{birthday,days_before}}')::int
      AND k.today BETWEEN d.birthday - ($9::jsonb #>> '{{birthday,days_before}}')::int AND d.birthday
    UNION ALL
    SELECT d.customer_id, 'anniversary', d.y::text, format('%s year(s) a member', d.y - d.joined_year),
           format('Thank you for another year with us, %s!', d.name), '{{}}', NULL, k.t, k.t
    FROM yearly d, span
    JOIN times k ON true
    WHERE $9::jsonb ? 'anniversary' AND d.y > d.joined_year
      AND d.anniversary BETWEEN span.first_day AND span.last_day AND k.today = d.anniversary
    UNION ALL
    SELECT g.customer_id, 'milestone', 'orders-' || g.n, format('order number %s', g.n),
           format('Order number %s: thank you!', g.n), '{{}}', NULL, k.t, k.t
    FROM order_stats s
    CROSS JOIN LATERAL (
        SELECT max(x::int) AS n FROM jsonb_array_elements_text($9::jsonb #> '{{milestone,orders}}') x
        WHERE x::int <= s.orders
    ) ms
    JOIN gaps g ON g.customer_id = s.customer_id AND g.n = ms.n, span
    JOIN times k ON true
    WHERE $9::jsonb ? 'milestone' AND g.placed_at > span.first_t - make_interval(days => {milestone_days})
      AND g.placed_at > k.t - make_interval(days => {milestone_days})
    UNION ALL
    SELECT c.customer_id, 'tier_welcome', 'change-' || c.change_id, format('upgraded to %s', c.to_tier),
           format('Welcome to %s!', c.to_tier), '{{}}', NULL, k.t, k.t
    FROM tier_changes c, k
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
                  extract(day FROM k.t - s.last_at), round(s.median_gap / 86400)),
           'We miss you!', '{{}}', NULL, k.t, span.last_t
    FROM order_stats s
    CROSS JOIN LATERAL (
        SELECT s.last_at + make_interval(
                   secs => s.median_gap * ($9::jsonb #>> '{{win_back,overdue_factor}}')::float8) AS due
    ) o, span
    JOIN times k ON true
    WHERE $9::jsonb ? 'win_back' AND s.orders >= 3 AND s.median_gap > 0
      AND o.due < span.last_t AND k.t > o.due
      AND (k.t = span.first_t OR k.t - interval '24 hours' <= o.due)
    UNION ALL
    SELECT e.customer_id, 'tier_within_reach', n.code || ':' || to_char(k.today, 'YYYY-MM'),
           format('%s %s away from %s', n.threshold - e.metric, $3::text, n.code),
           format('You are close to %s!', n.code), '{{}}', NULL, k.t, k.t
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
           format('%s of your points expire soon', sum(l.remaining)), '{{}}', min(l.expires_at), k.t, k.t
    FROM point_lots l, k
    WHERE $9::jsonb ? 'points_expiring' AND l.store_id = $1::text AND l.remaining > 0
      AND l.expires_at > $2::timestamptz
      AND l.expires_at <= $2::timestamptz
          + make_interval(days => ($9::jsonb #>> '{{points_expiring,days_before}}')::int)
    GROUP BY l.customer_id, k.t
    UNION ALL
    SELECT r.customer_id, 'service_recovery', 'case-' || r.case_id,
           coalesce(r.reason, 'a service case resolved'), 'We are sorry, and thank you for your patience.',
           '{{}}', NULL, k.t, k.t
    FROM resolved_cases_for_recovery($1::text, $2::timestamptz - make_interval(days => {recovery_days}),
                                     $2::timestamptz) r
    JOIN times k ON r.resolved_at > k.t - make_interval(days => {recovery_days})
    WHERE $9::jsonb ? 'service_recovery'
    UNION ALL
    SELECT n.customer_id, 'replenish', 'week-' || to_char(k.today, 'IYYY-IW'),
           format('running low soon: %s', string_agg(n.product_id, ', ' ORDER BY n.due_at)),
           'Time to restock?', array_agg(n.product_id ORDER BY n.due_at),
           max(n.due_at) + interval '7 days', k.t, k.t
    FROM unnest($11::text[], $12::text[], $13::timestamptz[], $14::float8[])
             n (customer_id, product_id, due_at, confidence), k
    WHERE $9::jsonb ? 'replenish' AND n.due_at > $2::timestamptz - interval '7 days'
      AND n.due_at <= $2::timestamptz
          + make_interval(days => ($9::jsonb #>> '{{replenish,days_before}}')::int)
      AND n.confidence >= ($9::jsonb #>> '{{replenish,min_confidence}}')::float8
    GROUP BY n.customer_id, k.today, k.t
    UNION ALL
    SELECT r.customer_id, 'recommended_next', {recommended_period},
           format('%s: %s', (array_agg(r.reason ORDER BY r.ord))[1],
                  string_agg(r.product_id, ', ' ORDER BY r.ord)),
           'Picked for you', array_agg(r.product_id ORDER BY r.ord), NULL, k.t, k.t
    FROM unnest($15::text[], $16::text[], $17::text[]) WITH ORDINALITY
             r (customer_id, product_id, reason, ord), k
    WHERE $9::jsonb ? 'recommended_next'
    GROUP BY r.customer_id, k.today, k.t
),
decorated AS (
    SELECT c.customer_id, c.trigger, c.period_key, c.reason, c.message, c.product_ids, c.expires_at, c.t,
           c.until_t, m.marketing_consent AS consent, coalesce(s.value, 0) AS value
    FROM candidates c
    JOIN mem m ON m.customer_id = c.customer_id
    LEFT JOIN order_stats s ON s.customer_id = c.customer_id
)
"""
RECOMMENDED_PERIOD = "'month-' || to_char({today}, 'YYYY-MM')"
"""`recommended_next`'s period key from the store-local date: once a month per member."""

# Restraint over `decorated` (candidates with the member's consent and value), in order: consent
# and the message cap (service recovery exempt), not already issued for this period, the gift
# cooldown; then one gift per member, the budget spent by priority, and one action per member (a
# gift before any suggestion). Placeholders name the parameters and the actions issued so far
# ({actions}: `care_actions`, or with the projection's simulated ones); `k.month_start` is the budget
# month. ELIGIBLE reads {now} per candidate, so the projection can judge every scan time's
# candidates against the real actions at once ({now} = `c.t`).
ELIGIBLE = """
, eligible AS (
    SELECT c.customer_id, c.trigger, c.period_key, c.reason, c.message, c.product_ids, c.t,
           coalesce(c.expires_at, {deliver_after} + interval '14 days') AS expires_at,
           {triggers} -> c.trigger ->> 'kind' AS kind,
           ({triggers} -> c.trigger ->> 'cost')::bigint AS cost,
           array_position({priority}, c.trigger) AS priority,
           c.value
    FROM decorated c
    WHERE (c.trigger = 'service_recovery' OR c.consent)
      AND NOT EXISTS (
          SELECT 1 FROM {actions} a
          WHERE a.store_id = {store} AND a.customer_id = c.customer_id
            AND a.trigger = c.trigger AND a.period_key = c.period_key)
      AND (c.trigger = 'service_recovery' OR NOT EXISTS (
          SELECT 1 FROM {actions} a
          WHERE a.store_id = {store} AND a.customer_id = c.customer_id
            AND a.created_at > {now} - make_interval(days => {cap})))
      AND ({triggers} -> c.trigger ->> 'kind' = 'suggestion' OR c.trigger = 'service_recovery'
           OR NOT EXISTS (
               SELECT 1 FROM {actions} a
               WHERE a.store_id = {store} AND a.customer_id = c.customer_id AND a.kind = 'gift'
                 AND a.created_at > {now} - make_interval(days => {cooldown})))
)
"""
CHOICE = """
, gift_best AS (
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
    WHERE g.running + (SELECT coalesce(sum(a.cost), 0) FROM {actions} a, k
                       WHERE a.store_id = {store} AND a.budget_month = k.month_start AND a.cost > 0)
                      <= {budget}
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
CANDIDATES = (
    EVALUATED_ALL
    + _CLOCK
    + _CANDIDATES.format(
        milestone_days=MILESTONE_LOOKBACK_DAYS,
        recovery_days=RECOVERY_LOOKBACK_DAYS,
        recommended_period=RECOMMENDED_PERIOD.format(today="k.today"),
    )
)
"""Every candidate with its scan time, consent and value (`decorated`); parameters $1 … $17."""

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
           c.product_ids, c.reason, c.message, c.cost, k.month_start, $21::timestamptz,
           CASE WHEN $21::timestamptz <= $2::timestamptz THEN $2::timestamptz END, c.expires_at,
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

_SCAN_PARAMETERS = {
    "store": "$1::text",
    "now": "$2::timestamptz",
    "triggers": "$9::jsonb",
    "budget": "$18::bigint",
    "cooldown": "$19::int",
    "cap": "$20::int",
    "deliver_after": "$21::timestamptz",
    "priority": "$22::text[]",
    "actions": "care_actions",
}
_SCAN = CANDIDATES + ELIGIBLE.format(**_SCAN_PARAMETERS) + CHOICE.format(**_SCAN_PARAMETERS) + _INSERT

# The members `recommended_next` could reach this month: consenting, not sent it this month, not
# capped. The scan asks the recommender for their lists only, not for the whole store's every hour.
_TODAY = "($2::timestamptz AT TIME ZONE $3::text)::date"
_RECOMMENDATION_WANTED = f"""
SELECT m.customer_id FROM members m
WHERE m.store_id = $1 AND m.erased_at IS NULL AND m.marketing_consent
  AND NOT EXISTS (
      SELECT 1 FROM care_actions a
      WHERE a.store_id = $1 AND a.customer_id = m.customer_id
        AND (a.trigger = 'recommended_next'
             AND a.period_key = {RECOMMENDED_PERIOD.format(today=_TODAY)}
             OR a.created_at > $2 - make_interval(days => $4)))
"""  # noqa: S608 - only module constants are interpolated

# Per store, so concurrent scans of one store queue (the budget is a read-then-write), while
# scans of different stores run in parallel. hashtext is stable for a given text.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('care.scan:' || $1::text))"
_MARK_SCANNED = """
INSERT INTO care_scans (store_id, last_scan_at) VALUES ($1, $2)
ON CONFLICT (store_id) DO UPDATE SET last_scan_at = EXCLUDED.last_scan_at
"""
WORK_MEM = "SELECT set_config('work_mem', '64MB', true)"


@dataclass(frozen=True)
class Rules:
    """What a scan, or the projection of many, judges by: the tier rule arguments ($1 … $7: store,
    now, metric, window, grace, level codes, thresholds), the store's time zone, the enabled
    triggers' settings and the restraint."""

    rule_args: list[Any]
    timezone: str
    triggers: dict[str, dict[str, Any]]
    budget: int
    cooldown_days: int
    cap_days: int
    priority: list[str]

    @property
    def store_id(self) -> str:
        store_id: str = self.rule_args[0]
        return store_id

    @property
    def now(self) -> datetime:
        now: datetime = self.rule_args[1]
        return now


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


async def recommendation_wanted(
    conn: Connection, *, store_id: str, now: datetime, timezone: str, cap_days: int
) -> list[str]:
    """Customer ids `recommended_next` could reach in a scan at `now`."""
    rows = await conn.fetch(_RECOMMENDATION_WANTED, store_id, now, timezone, cap_days)
    return [row[0] for row in rows]


async def scan(
    conn: Connection,
    *,
    rules: Rules,
    deliver_after: datetime,
    needs: tuple[list[str], list[str], list[datetime], list[float]],
    recommendations: tuple[list[str], list[str], list[str]],
) -> list[TriggerCount]:
    """Run the scan statement; returns what it issued, per trigger."""
    await conn.execute(WORK_MEM)
    rows = await conn.fetch(
        _SCAN,
        *rules.rule_args,
        rules.timezone,
        rules.triggers,
        1,
        *needs,
        *recommendations,
        rules.budget,
        rules.cooldown_days,
        rules.cap_days,
        deliver_after,
        rules.priority,
    )
    await conn.execute(_MARK_SCANNED, rules.store_id, rules.now)
    return msgspec.convert(rows, list[TriggerCount], from_attributes=True)
