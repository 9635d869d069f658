"""What publishing a candidate program would do, computed without changing anything.

The tier moves come from the very statement publishing runs (`loyalty/repository/tiers.py`, its
read-only form), so a preview followed by a publish at the same moment moves exactly the members
the preview counted.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from fractions import Fraction

import msgspec

from loyalty import care, earning
from loyalty.errors import NotFound
from loyalty.program import Program, validate
from loyalty.programs import live_program
from loyalty.repository import Connection
from loyalty.repository import programs as repo
from loyalty.repository import stores as store_repo
from loyalty.repository import tiers as tier_repo

TYPICAL_ORDER_DAYS = 90
FALLBACK_SUBTOTAL = 5000
"""Minor units taken as the typical order when the store has no paid order in the last 90 days."""


class TierMove(msgspec.Struct, kw_only=True):
    """How many members would move from one level to another."""

    from_: str = msgspec.field(name="from")
    to: str
    members: int


class Liability(msgspec.Struct, kw_only=True):
    """Outstanding points and what they are worth under each program.

    A point's value is the best value/cost ratio among the program's `voucher` rewards (minor units
    per point; 0 without vouchers): what a member redeeming well gets for it. Values are floored to
    whole minor units.
    """

    points_outstanding: int
    """Points members hold now (positive balances; debts are not counted)."""
    value_per_point_current: float
    value_per_point_candidate: float
    value_current: int
    value_candidate: int
    change: int
    """value_candidate - value_current, in minor units."""


class TypicalOrder(msgspec.Struct, kw_only=True):
    """Points one typical order would earn, per level: a single line of the median subtotal."""

    subtotal: int
    """The median subtotal of paid orders in the last 90 days (5000 minor units without any)."""
    points_by_tier: dict[str, int]
    """Under the candidate, per level code."""
    points_by_tier_current: dict[str, int]
    """Under the live program, per level code."""


class ProgramPreview(msgspec.Struct, kw_only=True):
    """The impact of publishing a candidate program now."""

    tier_moves: list[TierMove]
    """Members who would change level at once, by (from, to)."""
    pending_downgrades: int
    """Members who would keep their level but sit below its threshold, moving down after the grace."""
    liability: Liability
    typical_order: TypicalOrder
    gifts_next_30_days: int | None = None
    """Gifts the candidate's care triggers would send in the next 30 days: the daily scan's own rules
    (budget per month, cooldown, cap, priority) projected over the store as it is now, with only the
    clock moving (see `care.project_gifts`: gifts of orders, cases and upgrades still to come are
    not foreseen)."""
    gift_budget_next_30_days: int | None = None
    """Minor units of gift budget those gifts would use."""
    gifts_by_trigger: dict[str, int] = msgspec.field(default_factory=dict)
    """The gifts per trigger."""
    gift_budget_by_trigger: dict[str, int] = msgspec.field(default_factory=dict)
    """The budget they would use per trigger, minor units."""


def value_per_point(program: Program) -> Fraction:
    """The best value/cost ratio among voucher rewards, exactly (0 without vouchers)."""
    ratios = [Fraction(reward.value, reward.cost) for reward in program.rewards if reward.kind == "voucher"]
    return max(ratios, default=Fraction(0))


def _typical_points(
    program: Program, *, subtotal: int, currency: str, timezone: zoneinfo.ZoneInfo, now: datetime
) -> dict[str, int]:
    line = earning.Line("typical", None, None, 1, subtotal)
    return {
        level.code: earning.order_points(
            program,
            earning.OrderFacts(
                subtotal=subtotal,
                currency=currency,
                placed_at=now,
                lines=(line,),
                tier_code=level.code,
                first_order=False,
                birthday=None,
                timezone=timezone,
            ),
        ).points
        for level in program.tiers.levels
    }


async def preview(conn: Connection, *, store_id: str, candidate: Program, now: datetime) -> ProgramPreview:
    """Tier moves, liability and typical-order points if `candidate` were published at `now`."""
    validate(candidate)
    store = await store_repo.get_store(conn, store_id=store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    current = await live_program(conn, store_id=store_id)
    counts = await tier_repo.preview(conn, store_id=store_id, program=candidate, now=now)
    moves = [TierMove(from_=c.from_tier, to=c.to_tier, members=c.members) for c in counts if not c.pending]
    pending = sum(c.members for c in counts if c.pending)

    points = await repo.points_outstanding(conn, store_id=store_id)
    rate_current, rate_candidate = value_per_point(current), value_per_point(candidate)
    value_current, value_candidate = int(points * rate_current), int(points * rate_candidate)
    liability = Liability(
        points_outstanding=points,
        value_per_point_current=round(float(rate_current), 6),
        value_per_point_candidate=round(float(rate_candidate), 6),
        value_current=value_current,
        value_candidate=value_candidate,
        change=value_candidate - value_current,
    )

    median = await repo.median_subtotal(conn, store_id=store_id, now=now, days=TYPICAL_ORDER_DAYS)
    subtotal = FALLBACK_SUBTOTAL if median is None else median
    timezone = zoneinfo.ZoneInfo(store.timezone)
    typical = TypicalOrder(
        subtotal=subtotal,
        points_by_tier=_typical_points(
            candidate, subtotal=subtotal, currency=store.currency, timezone=timezone, now=now
        ),
        points_by_tier_current=_typical_points(
            current, subtotal=subtotal, currency=store.currency, timezone=timezone, now=now
        ),
    )
    gifts = await care.project_gifts(conn, store_id=store_id, program=candidate, now=now)
    return ProgramPreview(
        tier_moves=moves,
        pending_downgrades=pending,
        liability=liability,
        typical_order=typical,
        gifts_next_30_days=gifts.gifts,
        gift_budget_next_30_days=gifts.cost,
        gifts_by_trigger=gifts.by_trigger,
        gift_budget_by_trigger=gifts.cost_by_trigger,
    )
