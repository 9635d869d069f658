"""What care issued, read back: a member's open suggestions, acting on one, the store's report."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from loyalty.errors import NotFound
from loyalty.program import Program
from loyalty.repository import Connection
from loyalty.repository import care_actions as repo
from loyalty.repository import stores as store_repo
from loyalty.repository.care import ATTRIBUTION_DAYS


class GiftGiven(msgspec.Struct, kw_only=True):
    """What a gift gives: a voucher of `value` minor units, `value` points, or a product."""

    kind: str
    """`voucher`, `points` or `product`."""
    value: int
    product_id: str | None = None


class Suggestion(msgspec.Struct, kw_only=True):
    """A proactive suggestion or gift shown to the member until acted on or expired."""

    suggestion_id: str
    kind: str
    """The trigger: `replenish`, `tier_within_reach`, `points_expiring`, `recommended_next`, `birthday` …"""
    product_ids: list[str]
    reason: str
    expires_at: datetime | None
    message: str
    gift: GiftGiven | None = None
    """What is given, for a gift; null for a suggestion."""


class SuggestionList(msgspec.Struct, kw_only=True):
    """A member's open suggestions, newest first."""

    items: list[Suggestion]


class TriggerReport(msgspec.Struct, kw_only=True):
    """One trigger's month: actions sent, what they cost, and how many led to an order."""

    trigger: str
    kind: str
    sent: int
    cost: int
    converted: int
    """Actions followed by a paid order of the member within 14 days of delivery."""
    conversion: float
    """converted / sent."""


class CareReport(msgspec.Struct, kw_only=True):
    """Care's effect in one store-local month."""

    month: str
    """YYYY-MM, in the store's time zone."""
    budget: int
    """The monthly gift budget of the live program, minor units."""
    budget_used: int
    attribution_days: int
    triggers: list[TriggerReport]


async def open_suggestions(
    conn: Connection, *, store_id: str, customer_id: str, now: datetime, limit: int = 50
) -> SuggestionList:
    """Delivered, not acted on, not expired; 404 for an unknown member."""
    if not await repo.member_exists(conn, store_id=store_id, customer_id=customer_id):
        raise NotFound(f"no member {customer_id}")
    return SuggestionList(
        items=await live(conn, store_id=store_id, customer_id=customer_id, now=now, limit=limit)
    )


async def live(
    conn: Connection, *, store_id: str, customer_id: str, now: datetime, limit: int
) -> list[Suggestion]:
    """The member's suggestions and gifts shown at `now`: delivered (out of the quiet hours), neither
    acted on nor dismissed, not expired; newest first."""
    rows = await repo.open_actions(conn, store_id=store_id, customer_id=customer_id, now=now, limit=limit)
    return [msgspec.convert(row, Suggestion, from_attributes=True) for row in rows]


async def act(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    suggestion_id: str,
    now: datetime,
    outcome: Literal["acted", "dismissed"],
) -> None:
    """Take a suggestion off the member's list (idempotent: a second call changes nothing)."""
    action_id = int(suggestion_id) if suggestion_id.isdigit() and len(suggestion_id) < 19 else None
    changed = (
        None
        if action_id is None
        else await repo.act(
            conn, store_id=store_id, customer_id=customer_id, action_id=action_id, now=now, outcome=outcome
        )
    )
    if changed is None:
        raise NotFound(f"no suggestion {suggestion_id} for member {customer_id}")


async def report(
    conn: Connection, *, store_id: str, program: Program, now: datetime, month: str | None = None
) -> CareReport:
    """The report of `month` (YYYY-MM; default: the store-local month of `now`)."""
    store = await store_repo.get_store(conn, store_id=store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    start = (
        date.fromisoformat(month + "-01")
        if month
        else now.astimezone(ZoneInfo(store.timezone)).date().replace(day=1)
    )
    rows = await repo.report(conn, store_id=store_id, month=start)
    return CareReport(
        month=start.strftime("%Y-%m"),
        budget=program.care.gift_budget_per_month,
        budget_used=await repo.budget_used(conn, store_id=store_id, month=start),
        attribution_days=ATTRIBUTION_DAYS,
        triggers=[
            TriggerReport(
                trigger=row.trigger,
                kind=row.kind,
                sent=row.sent,
                cost=row.cost,
                converted=row.converted,
                conversion=round(row.converted / row.sent, 4) if row.sent else 0.0,
            )
            for row in rows
        ],
    )
