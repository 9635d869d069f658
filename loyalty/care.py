"""The care engine: surprise gifts and proactive suggestions, at the right moment and within budget.

`scan` evaluates every trigger of a store's program as of any `now`, in one set-based statement
(`loyalty/repository/care.py`), and records what it decides in `care_actions`, emitting
`gift.triggered` / `suggestion.created` to the outbox in the same transaction.

Rules of restraint, in the order they apply:
- Consent: every trigger needs `marketing_consent`, except `service_recovery` (owed, not marketing).
- Idempotency: one action per member, trigger and period (see the period keys in the repository);
  the unique key makes a repeated or concurrent scan issue nothing twice.
- Frequency cap: no proactive message to a member within `member_message_cap_days` of the last
  one (service recovery exempt), and at most one action per member per scan.
- Gift cooldown: no gift within `member_gift_cooldown_days` of the member's last gift.
- Budget: gifts of a store-local calendar month cost at most `gift_budget_per_month`. Candidates
  are taken in `PRIORITY` order, then by member value (net spend in the last 365 days, highest
  first), then customer id; gifts are granted while the running cost fits and none after the first
  that does not (a strict order, so a cheap low-priority gift never jumps a dearer deserved one).
- Quiet hours (store time zone): an action decided at night is recorded with `deliver_after` =
  the end of the quiet hours, and its outbox row is written only then (by `emit_due`, which every
  scan runs first). Delaying the row rather than putting `deliver_after` in the payload keeps
  delivery ignorant of care: any consumer of the outbox is already quiet at night.

Dates: birthdays and anniversaries are days in the store's time zone; a Feb 29 date is celebrated
on Feb 28 in non-leap years. A birthday trigger fires from `days_before` days ahead until the day.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from loyalty.errors import NotFound
from loyalty.program import Gift, Program, QuietHours
from loyalty.programs import live_program
from loyalty.repository import Connection, care_actions
from loyalty.repository import care as repo
from loyalty.repository import stores as store_repo
from loyalty.repository.care import TriggerCount
from loyalty.repository.tiers import rule_args

PRIORITY = [
    "service_recovery",
    "birthday",
    "tier_welcome",
    "milestone",
    "anniversary",
    "win_back",
    "points_expiring",
    "replenish",
    "tier_within_reach",
    "recommended_next",
]
"""Which trigger wins a member (and the budget) first: amends, then the member's own moments, then
rewards for loyalty, then re-engagement, then the nudges."""
REPLENISH_MIN_CONFIDENCE = 0.5


class Need(msgspec.Struct, frozen=True, kw_only=True):
    """A predicted need: the member will want `product_id` again around `due_at`."""

    customer_id: str
    product_id: str
    due_at: datetime
    confidence: float
    """0 … 1; below REPLENISH_MIN_CONFIDENCE a need is not suggested."""


class Recommendation(msgspec.Struct, frozen=True, kw_only=True):
    """A product recommended next to a member, with why."""

    customer_id: str
    product_id: str
    reason: str


NeedsSource = Callable[[Connection, str, datetime, int], Awaitable[Sequence[Need]]]
"""(conn, store_id, now, horizon_days) → needs due by now + horizon_days, for the whole store."""
RecommendationsSource = Callable[[Connection, str, datetime], Awaitable[Sequence[Recommendation]]]
"""(conn, store_id, now) → a few recommendations per member, for the whole store."""


@dataclass(frozen=True)
class CareSources:
    """What the recommender lends the scan; without a source its trigger finds nothing."""

    needs: NeedsSource | None = None
    recommendations: RecommendationsSource | None = None


class ScanResult(msgspec.Struct, kw_only=True):
    """What one scan of one store did."""

    store_id: str
    now: datetime
    deliver_after: datetime
    """When this scan's actions go out: `now`, or the end of the quiet hours."""
    actions: list[TriggerCount]
    emitted_due: int
    """Earlier actions whose quiet hours ended, emitted by this scan."""
    attributed: int
    """Actions newly linked to an order."""


def deliver_after(now: datetime, timezone: ZoneInfo, quiet: QuietHours) -> datetime:
    """`now`, or the next end of the quiet hours when `now` falls inside them (store time zone).

    Quiet hours may wrap midnight (21:00-08:00) or not (12:00-14:00); equal ends mean none.
    """
    start, end = time.fromisoformat(quiet.start), time.fromisoformat(quiet.end)
    local = now.astimezone(timezone)
    clock = local.time().replace(tzinfo=None)
    if start == end:
        return now
    quiet_now = (start <= clock < end) if start < end else (clock >= start or clock < end)
    if not quiet_now:
        return now
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=timezone).astimezone(now.tzinfo)


def gift_cost(gift: Gift, program: Program) -> int:
    """Minor units a gift costs the budget: its value, or for points what they are worth (the best
    voucher rate of the program's rewards)."""
    if gift.kind != "points":
        return gift.value
    rates = [Fraction(r.value, r.cost) for r in program.rewards if r.kind == "voucher"]
    return int(gift.value * max(rates, default=Fraction(0)))


def trigger_settings(program: Program) -> dict[str, dict[str, Any]]:
    """The enabled triggers as the scan statement reads them: settings, kind and cost."""
    settings: dict[str, dict[str, Any]] = {}
    for trigger in program.care.triggers:
        tag = str(type(trigger).__struct_config__.tag)
        entry: dict[str, Any] = msgspec.to_builtins(trigger)
        entry.pop("kind", None)
        gift: Gift | None = getattr(trigger, "gift", None)
        entry["kind"] = "gift" if gift is not None else "suggestion"
        entry["cost"] = gift_cost(gift, program) if gift is not None else 0
        if tag == "replenish":
            entry["min_confidence"] = REPLENISH_MIN_CONFIDENCE
        settings[tag] = entry
    return settings


async def _source_rows(
    conn: Connection, *, store_id: str, now: datetime, triggers: dict[str, Any], sources: CareSources
) -> tuple[tuple[list[str], list[str], list[datetime], list[float]], tuple[list[str], list[str], list[str]]]:
    needs: Sequence[Need] = []
    if "replenish" in triggers and sources.needs is not None:
        needs = await sources.needs(conn, store_id, now, int(triggers["replenish"]["days_before"]))
    recommendations: Sequence[Recommendation] = []
    if "recommended_next" in triggers and sources.recommendations is not None:
        recommendations = await sources.recommendations(conn, store_id, now)
    return (
        (
            [n.customer_id for n in needs],
            [n.product_id for n in needs],
            [n.due_at for n in needs],
            [n.confidence for n in needs],
        ),
        (
            [r.customer_id for r in recommendations],
            [r.product_id for r in recommendations],
            [r.reason for r in recommendations],
        ),
    )


async def scan(
    conn: Connection,
    *,
    store_id: str,
    now: datetime,
    program: Program | None = None,
    sources: CareSources | None = None,
) -> ScanResult:
    """Scan one store as of `now` under `program` (default: the live one). Call in a transaction:
    it holds the store's scan lock until commit, so concurrent scans queue and issue nothing twice."""
    store = await store_repo.get_store(conn, store_id=store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    program = program or await live_program(conn, store_id=store_id)
    await repo.lock_store(conn, store_id=store_id)
    emitted = await care_actions.emit_due(conn, store_id=store_id, now=now)
    attributed = await care_actions.attribute(conn, store_id=store_id, now=now)
    timezone = ZoneInfo(store.timezone)
    care = program.care
    triggers = trigger_settings(program)
    after = deliver_after(now, timezone, care.quiet_hours)
    needs, recommendations = await _source_rows(
        conn, store_id=store_id, now=now, triggers=triggers, sources=sources or CareSources()
    )
    counts = (
        []
        if not triggers
        else await repo.scan(
            conn,
            rule_args=rule_args(store_id, now, program),
            timezone=store.timezone,
            triggers=triggers,
            budget=care.gift_budget_per_month,
            cooldown_days=care.member_gift_cooldown_days,
            cap_days=care.member_message_cap_days,
            deliver_after=after,
            priority=PRIORITY,
            needs=needs,
            recommendations=recommendations,
        )
    )
    return ScanResult(
        store_id=store_id,
        now=now,
        deliver_after=after,
        actions=counts,
        emitted_due=emitted,
        attributed=attributed,
    )


class GiftProjection(msgspec.Struct, kw_only=True):
    """The gifts a program would trigger over the next days, and what they would cost."""

    gifts: int
    cost: int
    """Minor units of gift budget they would use (across the months the days span)."""
    by_trigger: dict[str, int]


async def project_gifts(
    conn: Connection, *, store_id: str, program: Program, now: datetime, days: int = 30
) -> GiftProjection:
    """Run the real scan once a day for `days` days from `now` under `program`, inside a savepoint
    that is rolled back: exactly the scan's rules (budget, cooldown, cap, and each simulated day's
    actions restraining the next), nothing kept. Needs and recommendations are left out (their
    suggestions would only take cap slots). Costs `days` scans of the store."""
    gifts: dict[str, int] = {}
    cost = 0
    if not any(getattr(trigger, "gift", None) is not None for trigger in program.care.triggers):
        return GiftProjection(gifts=0, cost=0, by_trigger=gifts)
    savepoint = conn.transaction()
    await savepoint.start()
    try:
        for day in range(days):
            result = await scan(conn, store_id=store_id, now=now + timedelta(days=day), program=program)
            for count in result.actions:
                if count.kind == "gift":
                    gifts[count.trigger] = gifts.get(count.trigger, 0) + count.actions
                    cost += count.cost
    finally:
        await savepoint.rollback()
    return GiftProjection(gifts=sum(gifts.values()), cost=cost, by_trigger=gifts)
