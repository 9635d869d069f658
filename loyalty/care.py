"""The care engine: surprise gifts and proactive suggestions, at the right moment and within budget.

`scan` evaluates every trigger of a store's program as of any `now`, in one set-based statement
(`loyalty/repository/care.py`), and records what it decides in `care_actions`, emitting
`gift.triggered` / `suggestion.created` to the outbox in the same transaction.

Rules of restraint, in the order they apply:
- Consent: every trigger needs `marketing_consent`, except `service_recovery` (owed, not marketing).
- Idempotency: one action per member, trigger and period (the period keys are in
  `loyalty/repository/care_rules.py`); the unique key makes a repeated or concurrent scan issue
  nothing twice.
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

Sources: `replenish` and `recommended_next` take their products from the recommender (`CareSources`,
wired by the worker): needs due by their rhythm, and for `recommended_next` the first entries of
each reachable member's precomputed `discover` list, read in bulk for just the members the trigger
could reach this month.

Points gifts (`{"kind": "points"}`) are credited in the scan's transaction: an `adjust` ledger entry
and lot (expiring as earned points do) whose reason names the action, linked from the action, once.

The program preview's gifts of the next 30 days (`project_gifts`) run the same candidate and
restraint SQL over the coming days, without issuing anything.
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
from loyalty.program import Care, Gift, Program, QuietHours
from loyalty.programs import live_program
from loyalty.repository import Connection, care_actions
from loyalty.repository import care as repo
from loyalty.repository import care_projection as projection_repo
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


class Recommendations(msgspec.Struct, frozen=True, kw_only=True):
    """Products recommended next, one entry per (member, product) in three columns, each member's
    best first (columns, not a Struct per entry: a store-wide scan reads tens of thousands)."""

    customer_ids: list[str]
    product_ids: list[str]
    reasons: list[str]
    """Why, for people ("members with similar taste bought"); the member's first one is shown."""


NeedsSource = Callable[[Connection, str, datetime, int], Awaitable[Sequence[Need]]]
"""(conn, store_id, now, horizon_days) → needs due by now + horizon_days, for the whole store."""
RecommendationsSource = Callable[[str, Sequence[str], int], Awaitable[Recommendations]]
"""(store_id, customer_ids, products) → up to `products` recommendations for each of these members
(the ones `recommended_next` could reach: consenting, not capped, not yet sent this month)."""


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
    points_credited: int = 0
    """Points gifts of this scan credited to their members' ledgers."""


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
    conn: Connection,
    *,
    store_id: str,
    now: datetime,
    timezone: str,
    care: Care,
    triggers: dict[str, Any],
    sources: CareSources,
) -> tuple[tuple[list[str], list[str], list[datetime], list[float]], tuple[list[str], list[str], list[str]]]:
    needs: Sequence[Need] = []
    if "replenish" in triggers and sources.needs is not None:
        needs = await sources.needs(conn, store_id, now, int(triggers["replenish"]["days_before"]))
    picks = Recommendations(customer_ids=[], product_ids=[], reasons=[])
    if "recommended_next" in triggers and sources.recommendations is not None:
        wanted = await repo.recommendation_wanted(
            conn, store_id=store_id, now=now, timezone=timezone, cap_days=care.member_message_cap_days
        )
        if wanted:
            picks = await sources.recommendations(
                store_id, wanted, int(triggers["recommended_next"]["products"])
            )
    return (
        (
            [n.customer_id for n in needs],
            [n.product_id for n in needs],
            [n.due_at for n in needs],
            [n.confidence for n in needs],
        ),
        (picks.customer_ids, picks.product_ids, picks.reasons),
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
        conn,
        store_id=store_id,
        now=now,
        timezone=store.timezone,
        care=care,
        triggers=triggers,
        sources=sources or CareSources(),
    )
    counts = (
        []
        if not triggers
        else await repo.scan(
            conn,
            rules=_rules(store_id, store.timezone, now, program, triggers),
            deliver_after=after,
            needs=needs,
            recommendations=recommendations,
        )
    )
    credited = 0
    if any(count.kind == "gift" for count in counts) and _gives_points(program):
        expiry = program.points.expiry_days
        credited = await care_actions.credit_points_gifts(
            conn,
            store_id=store_id,
            now=now,
            program_version=program.version,
            expires_at=now + timedelta(days=expiry) if expiry else None,
        )
    return ScanResult(
        store_id=store_id,
        now=now,
        deliver_after=after,
        actions=counts,
        emitted_due=emitted,
        attributed=attributed,
        points_credited=credited,
    )


def _rules(
    store_id: str, timezone: str, now: datetime, program: Program, triggers: dict[str, dict[str, Any]]
) -> repo.Rules:
    care = program.care
    return repo.Rules(
        rule_args=rule_args(store_id, now, program),
        timezone=timezone,
        triggers=triggers,
        budget=care.gift_budget_per_month,
        cooldown_days=care.member_gift_cooldown_days,
        cap_days=care.member_message_cap_days,
        priority=PRIORITY,
    )


def _gives_points(program: Program) -> bool:
    return any(
        gift is not None and gift.kind == "points"
        for gift in (getattr(trigger, "gift", None) for trigger in program.care.triggers)
    )


class GiftProjection(msgspec.Struct, kw_only=True):
    """The gifts a program would trigger over the next days, and what they would cost."""

    gifts: int
    cost: int
    """Minor units of gift budget they would use (across the months the days span)."""
    by_trigger: dict[str, int]
    cost_by_trigger: dict[str, int] = msgspec.field(default_factory=dict)


async def project_gifts(
    conn: Connection, *, store_id: str, program: Program, now: datetime, days: int = 30
) -> GiftProjection:
    """The gifts a scan a day from `now` for `days` days would give under `program`, with nothing
    kept: the scan's own candidates (computed for all the days in one pass) and its own restraint
    (budget per month, cooldown, cap, priority, each simulated day's gifts restraining the next).

    It projects the store as it is now with only the clock moving: the birthdays, anniversaries
    and lapses (win-back) ahead are exact, and so are milestones, resolved cases and upgrades
    already there while their lookbacks last; the orders, cases and upgrades still to come (and
    the gifts they would bring) are not foreseen, and a member projected to lapse may yet order.
    Suggestions are not projected: they give nothing, and would only take cap slots."""
    store = await store_repo.get_store(conn, store_id=store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    triggers = {tag: entry for tag, entry in trigger_settings(program).items() if entry["kind"] == "gift"}
    if not triggers:
        return GiftProjection(gifts=0, cost=0, by_trigger={})
    timezone, quiet = ZoneInfo(store.timezone), program.care.quiet_hours
    per_day = await projection_repo.project(
        conn,
        rules=_rules(store_id, store.timezone, now, program, triggers),
        deliver_after=[deliver_after(now + timedelta(days=d), timezone, quiet) for d in range(days)],
    )
    gifts: dict[str, int] = {}
    costs: dict[str, int] = {}
    for count in (count for day in per_day for count in day):
        gifts[count.trigger] = gifts.get(count.trigger, 0) + count.actions
        costs[count.trigger] = costs.get(count.trigger, 0) + count.cost
    return GiftProjection(
        gifts=sum(gifts.values()), cost=sum(costs.values()), by_trigger=gifts, cost_by_trigger=costs
    )
