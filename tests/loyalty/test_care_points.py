"""Points gifts are credited to the member's ledger with the action, exactly once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx

from loyalty import care
from loyalty.program import Program
from loyalty.stores import StoreCreated
from tests.loyalty.care_rows import care_member, care_program, events, members_born_on
from tests.members import balance, check_invariants, new_member

POINTS_GIFT = {"kind": "points", "value": 250}
NOON = datetime(2026, 6, 10, 10, tzinfo=UTC)


async def run(pool: asyncpg.Pool, store_id: str, now: datetime, program: Program) -> care.ScanResult:
    async with pool.acquire() as conn, conn.transaction():
        return await care.scan(conn, store_id=store_id, now=now, program=program)


async def test_a_points_gift_is_an_adjust_entry_and_a_lot_linked_to_its_action(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    cid = await new_member(client, store, points=40)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE members SET birthday = '1990-06-10', marketing_consent = true"
            " WHERE store_id = $1 AND customer_id = $2",
            sid,
            cid,
        )
    program = care_program({"kind": "birthday", "gift": POINTS_GIFT})
    first = await run(pool, sid, NOON, program)
    again = await run(pool, sid, NOON + timedelta(hours=1), program)
    assert (first.points_credited, again.points_credited) == (1, 0)
    async with pool.acquire() as conn:
        action_id, entry_id = await conn.fetchrow(
            "SELECT action_id, entry_id FROM care_actions WHERE store_id = $1", sid
        )
        entry = await conn.fetchrow(
            "SELECT kind, points, reason, expires_at, created_at FROM ledger_entries WHERE entry_id = $1",
            entry_id,
        )
        lot = await conn.fetchrow(
            "SELECT points, remaining, expires_at FROM point_lots WHERE entry_id = $1", entry_id
        )
        assert await balance(conn, sid, cid) == 40 + 250
        await check_invariants(conn, sid)
        announced = await conn.fetch(
            "SELECT payload FROM outbox WHERE store_id = $1 AND event_type = 'points.changed'"
            " AND payload ->> 'reason' LIKE 'care gift%'",
            sid,
        )
        [(kind, _, gift_event)] = await events(conn, sid)
    assert (entry["kind"], entry["points"], entry["created_at"]) == ("adjust", 250, NOON)
    assert entry["reason"] == f"care gift: birthday (care action {action_id})"
    assert entry["expires_at"] == NOON + timedelta(days=365)
    assert (lot["points"], lot["remaining"], lot["expires_at"]) == (250, 250, entry["expires_at"])
    assert [(row["payload"]["delta"], row["payload"]["balance"]) for row in announced] == [(250, 290)]
    assert (kind, gift_event["gift"]) == (
        "gift.triggered",
        {"kind": "points", "value": 250, "product_id": None},
    )


async def test_a_points_gift_pays_a_debt_first(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(conn, sid, "owes", birthday=date(1990, 6, 10))
        await care_member(conn, sid, "owes-more", birthday=date(1990, 6, 10))
        for cid, debt in (("owes", 100), ("owes-more", 400)):
            # A reversal after the points were spent leaves a debt: the balance below zero, no open lot.
            await conn.execute(
                "INSERT INTO ledger_entries (store_id, customer_id, kind, points, reason)"
                " VALUES ($1, $2, 'reverse', $3, 'refund after spending')",
                sid,
                cid,
                -debt,
            )
            await conn.execute(
                "UPDATE members SET balance = $3 WHERE store_id = $1 AND customer_id = $2", sid, cid, -debt
            )
    await run(pool, sid, NOON, care_program({"kind": "birthday", "gift": POINTS_GIFT}))
    async with pool.acquire() as conn:
        assert await balance(conn, sid, "owes") == 150
        assert await balance(conn, sid, "owes-more") == -150
        remaining = await conn.fetch(
            "SELECT customer_id, remaining FROM point_lots WHERE store_id = $1 ORDER BY customer_id", sid
        )
        await check_invariants(conn, sid)
    assert [(r["customer_id"], r["remaining"]) for r in remaining] == [("owes", 150), ("owes-more", 0)]


async def test_concurrent_scans_credit_each_gift_once(pool: asyncpg.Pool, store: StoreCreated) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await members_born_on(conn, sid, date(1990, 6, 10), 30)
    program = care_program({"kind": "birthday", "gift": POINTS_GIFT})
    results = await asyncio.gather(*(run(pool, sid, NOON, program) for _ in range(3)))
    assert sorted(r.points_credited for r in results) == [0, 0, 30]
    async with pool.acquire() as conn:
        credited = await conn.fetchval(
            "SELECT sum(points) FROM ledger_entries WHERE store_id = $1 AND reason LIKE 'care gift%'", sid
        )
        await check_invariants(conn, sid)
    assert credited == 30 * 250
