"""Every care trigger, time-travelled with `now`, against real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx

from loyalty import care
from loyalty.program import Program
from loyalty.stores import StoreCreated
from tests.conftest import make_store
from tests.loyalty.care_rows import actions, care_member, care_program, events, insert_lot
from tests.sql_rows import insert_order

VOUCHER = {"kind": "voucher", "value": 500}


async def run(
    pool: asyncpg.Pool, store_id: str, now: datetime, program: Program, **kw: object
) -> care.ScanResult:
    async with pool.acquire() as conn, conn.transaction():
        return await care.scan(conn, store_id=store_id, now=now, program=program, **kw)  # type: ignore[arg-type]


class TestBirthday:
    async def test_on_the_day_in_tokyo_at_2330_utc(
        self, client: httpx.AsyncClient, pool: asyncpg.Pool
    ) -> None:
        store = await make_store(client, timezone="Asia/Tokyo")
        sid = store.store_id
        async with pool.acquire() as conn:
            await care_member(conn, sid, "ann", birthday=date(1990, 3, 15))
        program = care_program({"kind": "birthday", "gift": VOUCHER})
        # 14:59 UTC on the 14th is 23:59 in Tokyo: the day before.
        await run(pool, sid, datetime(2026, 3, 14, 14, 59, tzinfo=UTC), program)
        async with pool.acquire() as conn:
            assert await actions(conn, sid) == []
        # 23:30 UTC on the 14th is 08:30 on the 15th in Tokyo: the birthday.
        await run(pool, sid, datetime(2026, 3, 14, 23, 30, tzinfo=UTC), program)
        async with pool.acquire() as conn:
            assert await actions(conn, sid) == [("ann", "birthday", "gift", "2026")]
            [(kind, customer, payload)] = await events(conn, sid)
        assert (kind, customer) == ("gift.triggered", "ann")
        assert payload["gift"] == {"kind": "voucher", "value": 500, "product_id": None}
        assert payload["reason"] == "birthday on 2026-03-15"
        assert payload["message"] == "Happy birthday, Ann!"

    async def test_days_before_and_once_a_year(self, pool: asyncpg.Pool, store: StoreCreated) -> None:
        sid = store.store_id
        async with pool.acquire() as conn:
            await care_member(conn, sid, "ann", birthday=date(1990, 1, 2))
        program = care_program({"kind": "birthday", "days_before": 3, "gift": VOUCHER})
        await run(pool, sid, datetime(2025, 12, 29, 12, tzinfo=UTC), program)  # four days before
        await run(pool, sid, datetime(2025, 12, 30, 12, tzinfo=UTC), program)  # three days before
        await run(pool, sid, datetime(2026, 1, 2, 12, tzinfo=UTC), program)  # the day: already given
        async with pool.acquire() as conn:
            assert await actions(conn, sid) == [("ann", "birthday", "gift", "2026")]

    async def test_leap_day_birthdays_fall_on_feb_28_in_other_years(
        self, pool: asyncpg.Pool, store: StoreCreated
    ) -> None:
        sid = store.store_id
        async with pool.acquire() as conn:
            await care_member(conn, sid, "leap", birthday=date(2000, 2, 29))
        program = care_program({"kind": "birthday"})
        await run(pool, sid, datetime(2027, 2, 27, 12, tzinfo=UTC), program)
        await run(pool, sid, datetime(2027, 2, 28, 12, tzinfo=UTC), program)
        await run(pool, sid, datetime(2028, 2, 28, 12, tzinfo=UTC), program)
        async with pool.acquire() as conn:
            assert await actions(conn, sid) == [("leap", "birthday", "suggestion", "2027")]
        await run(pool, sid, datetime(2028, 2, 29, 12, tzinfo=UTC), program)
        async with pool.acquire() as conn:
            assert [a[3] for a in await actions(conn, sid)] == ["2027", "2028"]


async def test_anniversary_of_membership(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann", created_at=datetime(2024, 5, 10, 9, tzinfo=UTC))
    program = care_program({"kind": "anniversary", "gift": VOUCHER})
    await run(pool, sid, datetime(2024, 5, 10, 20, tzinfo=UTC), program)  # the day they joined
    await run(pool, sid, datetime(2025, 5, 9, 20, tzinfo=UTC), program)
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == []
    await run(pool, sid, datetime(2025, 5, 10, 20, tzinfo=UTC), program)
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [("ann", "anniversary", "gift", "2025")]


async def test_a_member_who_joined_on_a_leap_day_is_thanked_on_feb_28(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(conn, sid, "leap", created_at=datetime(2024, 2, 29, 9, tzinfo=UTC))
    program = care_program({"kind": "anniversary"})
    for day in (date(2025, 2, 27), date(2025, 2, 28), date(2025, 3, 1), date(2028, 2, 28), date(2028, 2, 29)):
        await run(pool, sid, datetime(day.year, day.month, day.day, 12, tzinfo=UTC), program)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT period_key, reason, created_at FROM care_actions WHERE store_id = $1 ORDER BY action_id",
            sid,
        )
    assert [(r["period_key"], r["reason"], r["created_at"].date()) for r in rows] == [
        ("2025", "1 year(s) a member", date(2025, 2, 28)),
        ("2028", "4 year(s) a member", date(2028, 2, 29)),
    ]


async def test_milestone_on_the_nth_order(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid, now = store.store_id, datetime(2026, 4, 1, 12, tzinfo=UTC)
    async with pool.acquire() as conn:
        await care_member(conn, sid, "five")
        await care_member(conn, sid, "four")
        await care_member(conn, sid, "old")
        for day in (40, 30, 20, 10, 2):
            await insert_order(conn, sid, "five", subtotal=1000, placed_at=now - timedelta(days=day))
            await insert_order(conn, sid, "old", subtotal=1000, placed_at=now - timedelta(days=day + 30))
        for day in (30, 20, 10, 2):
            await insert_order(conn, sid, "four", subtotal=1000, placed_at=now - timedelta(days=day))
    await run(pool, sid, now, care_program({"kind": "milestone", "orders": [5, 10], "gift": VOUCHER}))
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [("five", "milestone", "gift", "orders-5")]


async def test_tier_welcome_after_an_upgrade_since_the_last_scan(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid, now = store.store_id, datetime(2026, 4, 1, 12, tzinfo=UTC)
    program = care_program({"kind": "tier_welcome"})
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann", tier_code="silver")
        await care_member(conn, sid, "bob", tier_code="member")
        await run(pool, sid, now - timedelta(hours=2), program)
        await conn.execute(
            """
            INSERT INTO tier_changes (store_id, customer_id, from_tier, to_tier, reason, created_at)
            VALUES ($1, 'ann', 'member', 'silver', 'upgrade (order o-1)', $2),
                   ($1, 'bob', 'silver', 'member', 'downgrade after grace (daily evaluation)', $2)
            """,
            sid,
            now - timedelta(hours=1),
        )
    await run(pool, sid, now, program)
    await run(pool, sid, now + timedelta(hours=1), program)
    async with pool.acquire() as conn:
        rows = await actions(conn, sid)
    assert [(r[0], r[1]) for r in rows] == [("ann", "tier_welcome")]


async def test_win_back_against_the_members_own_rhythm(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid, now = store.store_id, datetime(2026, 4, 1, 12, tzinfo=UTC)
    async with pool.acquire() as conn:
        for cid, last in (("lapsed", 25), ("regular", 15), ("few", 60)):
            await care_member(conn, sid, cid)
            count = 2 if cid == "few" else 4
            for i in range(count):
                await insert_order(
                    conn, sid, cid, subtotal=1000, placed_at=now - timedelta(days=last + 10 * i)
                )
    await run(pool, sid, now, care_program({"kind": "win_back", "overdue_factor": 2.0, "gift": VOUCHER}))
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [
            ("lapsed", "win_back", "gift", f"after-{(now - timedelta(days=25)).date()}")
        ]


async def test_tier_within_reach_uses_the_tier_metric(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid, now = store.store_id, datetime(2026, 4, 1, 12, tzinfo=UTC)
    async with pool.acquire() as conn:
        for cid, spend in (("close", 46_000), ("far", 40_000), ("refunded", 47_000)):
            await care_member(conn, sid, cid)
            refunded = 5_000 if cid == "refunded" else 0
            await insert_order(
                conn, sid, cid, subtotal=spend, refunded=refunded, placed_at=now - timedelta(days=3)
            )
    await run(pool, sid, now, care_program({"kind": "tier_within_reach", "within_percent": 10}))
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [("close", "tier_within_reach", "suggestion", "silver:2026-04")]
        [(_, _, payload)] = await events(conn, sid)
    assert payload["reason"] == "4000 spend away from silver"


async def test_points_expiring(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid, now = store.store_id, datetime(2026, 4, 1, 12, tzinfo=UTC)
    async with pool.acquire() as conn:
        await care_member(conn, sid, "soon")
        await care_member(conn, sid, "later")
        await insert_lot(conn, sid, "soon", points=120, expires_at=now + timedelta(days=20))
        await insert_lot(conn, sid, "soon", points=30, expires_at=now + timedelta(days=25))
        await insert_lot(conn, sid, "later", points=99, expires_at=now + timedelta(days=45))
    await run(pool, sid, now, care_program({"kind": "points_expiring", "days_before": 30}))
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [("soon", "points_expiring", "suggestion", "expiry-2026-04-21")]
        [(kind, _, payload)] = await events(conn, sid)
    assert kind == "suggestion.created"
    assert payload["reason"] == "150 points expire from 2026-04-21"
    assert payload["expires_at"].startswith("2026-04-21")
