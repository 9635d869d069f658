"""The care rules as SQL, shared by the scan (`loyalty/repository/care.py`) and the gift projection
(`loyalty/repository/care_projection.py`): the candidates of every trigger, computed for a series of
scan times (one for a scan, a day apart for the projection), and the restraint, which reads its
settings and the actions issued so far through placeholders, so both run the very same rules.

Parameters of CANDIDATES: $1 … $7 as in `loyalty/repository/tiers.py` (store, now, metric, window,
grace, level codes, thresholds: `tier_within_reach` reads the tiers' own `evaluated` CTE), $8 the
store's time zone, $9 the enabled triggers' settings (jsonb keyed by trigger; a trigger absent from it
yields nothing), $10 how many scan times (a day apart from $2) the candidates are computed for,
$11 … $14 the needs (customer, product, due_at, confidence) for `replenish`, $15 … $17 the
recommendations (customer, product, reason; each member's best first) for `recommended_next`.

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

from loyalty.repository.tiers import EVALUATED_ALL

MILESTONE_LOOKBACK_DAYS = 7
"""A milestone order placed within this many days still counts (a scan may have been missed)."""
RECOVERY_LOOKBACK_DAYS = 14

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
