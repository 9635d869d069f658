"""The care scan in one set-based statement: candidates per trigger, restraint, actions, outbox.

The candidates and the restraint are `loyalty/repository/care_rules.py` (shared with the gift
projection); this module adds the writes: the actions (unique per member, trigger and period, so a
repeated or concurrent scan issues nothing twice) and their outbox rows. Parameters: $1 … $17 as in
`care_rules.CANDIDATES`, then the restraint's $18 the monthly gift budget, $19 the gift cooldown
days, $20 the message cap days, $21 deliver_after (now, or the end of the quiet hours), $22 the
trigger priority (text[]).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection
from loyalty.repository.care_rules import CANDIDATES, CHOICE, ELIGIBLE, RECOMMENDED_PERIOD

ATTRIBUTION_DAYS = 14

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
