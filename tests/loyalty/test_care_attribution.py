"""Attribution: the member's first paid order within 14 days of delivery is linked to the action,
and the store's report gives actions sent, budget used and conversion per trigger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from loyalty import care, care_actions
from loyalty.stores import StoreCreated
from tests.loyalty.care_rows import care_member, care_program, insert_lot
from tests.sql_rows import insert_order

NIGHT = datetime(2026, 6, 9, 22, 30, tzinfo=UTC)  # 00:30 on the 10th in Berlin: quiet until 08:00
DELIVERED = datetime(2026, 6, 10, 6, tzinfo=UTC)
PROGRAM = care_program(
    {"kind": "birthday", "gift": {"kind": "voucher", "value": 500}},
    {"kind": "points_expiring", "days_before": 30},
    quiet=("21:00", "08:00"),
)


async def test_an_order_within_14_days_of_delivery_is_linked_and_reported_per_trigger(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        for cid in ("before", "inside", "after", "twice"):
            await care_member(conn, sid, cid, birthday=date(1990, 6, 10))
        await care_member(conn, sid, "expiring")
        await insert_lot(conn, sid, "expiring", points=80, expires_at=NIGHT + timedelta(days=20))
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=sid, now=NIGHT, program=PROGRAM)
    async with pool.acquire() as conn:
        # Placed before delivery (the gift was decided, not yet sent): no link.
        await insert_order(conn, sid, "before", subtotal=1000, placed_at=DELIVERED - timedelta(minutes=30))
        inside = await insert_order(
            conn, sid, "inside", subtotal=1000, placed_at=DELIVERED + timedelta(days=13, hours=23)
        )
        await insert_order(
            conn, sid, "after", subtotal=1000, placed_at=DELIVERED + timedelta(days=14, hours=1)
        )
        first = await insert_order(conn, sid, "twice", subtotal=1000, placed_at=DELIVERED + timedelta(days=2))
        await insert_order(conn, sid, "twice", subtotal=1000, placed_at=DELIVERED + timedelta(days=3))
        soon = await insert_order(
            conn, sid, "expiring", subtotal=1000, placed_at=DELIVERED + timedelta(days=1)
        )
    attributed = 0
    for later in (timedelta(hours=1), timedelta(days=3), timedelta(days=14, hours=2)):  # link what came since
        async with pool.acquire() as conn, conn.transaction():
            result = await care.scan(conn, store_id=sid, now=DELIVERED + later, program=PROGRAM)
        attributed += result.attributed
    async with pool.acquire() as conn:
        linked = await conn.fetch(
            "SELECT customer_id, order_id FROM care_actions WHERE store_id = $1 ORDER BY customer_id", sid
        )
        report = await care_actions.report(conn, store_id=sid, program=PROGRAM, now=NIGHT, month="2026-06")
    assert attributed == 3
    assert {r["customer_id"]: r["order_id"] for r in linked} == {
        "after": None,
        "before": None,
        "expiring": soon,
        "inside": inside,
        "twice": first,
    }
    assert (report.month, report.budget_used, report.attribution_days) == ("2026-06", 2000, 14)
    assert [(t.trigger, t.kind, t.sent, t.cost, t.converted, t.conversion) for t in report.triggers] == [
        ("birthday", "gift", 4, 2000, 2, 0.5),
        ("points_expiring", "suggestion", 1, 0, 1, 1.0),
    ]
