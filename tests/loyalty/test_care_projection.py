"""The 30-day gift projection gives what 30 daily scans then actually give: the same rules run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from loyalty import care
from loyalty.repository import Connection
from loyalty.stores import StoreCreated
from tests.loyalty.care_rows import care_member, care_program, stand_in_cases
from tests.sql_rows import insert_order

NOON = datetime(2026, 6, 10, 10, tzinfo=UTC)  # 12:00 in Berlin
LONG_AGO = datetime(2020, 1, 15, 9, tzinfo=UTC)  # an anniversary outside the window


def voucher(value: int) -> dict[str, object]:
    return {"kind": "voucher", "value": value}


PROGRAM = care_program(
    {"kind": "service_recovery", "gift": voucher(1000)},
    {"kind": "birthday", "days_before": 2, "gift": voucher(500)},
    # 190 points at the best voucher rate (1000 for 950 points) cost 200 of the budget.
    {"kind": "tier_welcome", "gift": {"kind": "points", "value": 190}},
    {"kind": "milestone", "orders": [3], "gift": voucher(700)},
    {"kind": "anniversary", "gift": voucher(300)},
    {"kind": "win_back", "overdue_factor": 2.0, "gift": voucher(400)},
    gift_budget_per_month=4000,
    member_gift_cooldown_days=90,
    member_message_cap_days=3,
)


async def a_store_with_every_gift_ahead(conn: Connection, sid: str) -> None:
    """Members whose gifts fall in the next 30 days, with the budget, cooldown, cap and consent in play."""

    async def member(cid: str, **kw: object) -> None:
        await care_member(conn, sid, cid, **{"created_at": LONG_AGO} | kw)  # type: ignore[arg-type]

    async def orders(cid: str, *days_ago: int) -> None:
        for days in days_ago:
            await insert_order(conn, sid, cid, subtotal=2000, placed_at=NOON - timedelta(days=days))

    await member("b1", birthday=date(1990, 6, 11))  # a gift today, two days ahead
    await member("b2", birthday=date(1985, 6, 25))  # June's budget is spent by then
    await member("b3", birthday=date(1970, 7, 3))  # July's budget
    await member("b4", birthday=date(1970, 7, 8), consent=False)
    await member("b5", birthday=date(1990, 6, 11))  # capped today by yesterday's suggestion
    await conn.execute(
        """
        INSERT INTO care_actions (store_id, customer_id, kind, trigger, period_key, reason, message,
                                  budget_month, deliver_after, emitted_at, created_at)
        VALUES ($1, 'b5', 'suggestion', 'points_expiring', 'expiry-x', 'r', 'm', '2026-06-01', $2, $2, $2)
        """,
        sid,
        NOON - timedelta(days=2),
    )
    await member("a1", created_at=datetime(2024, 6, 20, 9, tzinfo=UTC))  # June's budget is spent
    await member("a2", created_at=datetime(2025, 7, 1, 9, tzinfo=UTC))
    # Birthday first; the anniversary the day after falls in the gift cooldown.
    await member("ab", birthday=date(1990, 6, 13), created_at=datetime(2024, 6, 12, 9, tzinfo=UTC))
    await member("m1")
    await orders("m1", 12, 7, 2)  # the third order: a milestone; overdue from day 9, in cooldown then
    await member("w1")
    await orders("w1", 45, 35, 25)  # overdue already
    await member("w2")
    await orders("w2", 20, 15, 10)  # overdue tomorrow, but the budget is spent until July
    await member("t1")
    await conn.execute(
        "INSERT INTO tier_changes (store_id, customer_id, from_tier, to_tier, reason, created_at)"
        " VALUES ($1, 't1', 'member', 'silver', 'upgrade (order o-9)', $2)",
        sid,
        NOON - timedelta(hours=1),
    )
    await member("s1", consent=False)  # service recovery needs no consent
    await stand_in_cases(conn, [("s1", "c-1", NOON - timedelta(hours=3))])


async def test_preview_and_thirty_daily_scans_give_the_same_gifts(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        transaction = conn.transaction()  # the stand-in case function goes with it
        await transaction.start()
        try:
            await a_store_with_every_gift_ahead(conn, sid)
            projected = await care.project_gifts(conn, store_id=sid, program=PROGRAM, now=NOON)
            issued: dict[str, int] = {}
            cost: dict[str, int] = {}
            for day in range(30):
                result = await care.scan(conn, store_id=sid, now=NOON + timedelta(days=day), program=PROGRAM)
                for count in result.actions:
                    assert count.kind == "gift"
                    issued[count.trigger] = issued.get(count.trigger, 0) + count.actions
                    cost[count.trigger] = cost.get(count.trigger, 0) + count.cost
            given = await conn.fetch(
                "SELECT customer_id, trigger, (created_at - $2) AS after FROM care_actions"
                " WHERE store_id = $1 AND kind = 'gift' ORDER BY customer_id",
                sid,
                NOON,
            )
        finally:
            await transaction.rollback()
    assert (projected.by_trigger, projected.cost_by_trigger) == (issued, cost)
    assert (projected.gifts, projected.cost) == (sum(issued.values()), sum(cost.values()))
    assert [(r["customer_id"], r["trigger"], r["after"].days) for r in given] == [
        ("a2", "anniversary", 21),
        ("ab", "birthday", 1),
        ("b1", "birthday", 0),
        ("b3", "birthday", 21),
        ("b5", "birthday", 1),
        ("m1", "milestone", 0),
        ("s1", "service_recovery", 0),
        ("t1", "tier_welcome", 0),
        ("w1", "win_back", 0),
        ("w2", "win_back", 21),
    ]
    assert projected.cost == 3800 + 1200
