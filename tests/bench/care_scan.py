"""Benchmark: one care scan over a whole store, set-based (no per-member round trips).

    python -m tests.bench.care_scan [--members 100000] [--orders 4] [--preview]

Loads N members (birthdays, consent, join dates and orders spread with generate_series, lots
expiring over the next months) into a database of its own, then times the scan under a program
with every SQL-side trigger enabled: once (it issues actions), and again (the idempotent re-run,
which issues nothing). `--preview` also times the 30-day gift projection. Uses
PATRON_BENCH_DATABASE_URL, else PATRON_TEST_DATABASE_URL, else an embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

import msgspec

from loyalty import care, stores
from loyalty.program import Care, QuietHours, Trigger, default_program
from loyalty.stores import StoreCreate
from plugin import database
from plugin.migrations import migrate
from tests.bench.program_change import bench_database

_LOAD_MEMBERS = """
INSERT INTO members (store_id, customer_id, first_name, birthday, marketing_consent, created_at,
                     tier_code, tier_since)
SELECT $1, 'c' || n, 'Member', date '1960-01-01' + (n * 7919 % 16000),
       n % 5 <> 0, $2::timestamptz - (n * 31 % 1500) * interval '1 day', 'member',
       $2::timestamptz - interval '400 days'
FROM generate_series(1, $3::int) AS n
"""
_LOAD_ORDERS = """
INSERT INTO orders (store_id, order_id, customer_id, currency, subtotal, total, placed_at, points)
SELECT $1, 'o' || n || '-' || k, 'c' || n, 'EUR', s, s,
       $2::timestamptz - ((n % 50) + k * (10 + n % 40)) * interval '1 day', s / 100
FROM generate_series(1, $3::int) AS n,
     generate_series(0, $4::int - 1) AS k,
     LATERAL (SELECT ((n * 7919 + k * 104729) % 30000)::bigint AS s) AS amount
"""
_LOAD_LOTS = """
WITH entries AS (
    INSERT INTO ledger_entries (store_id, customer_id, kind, points, reason, expires_at)
    SELECT $1, 'c' || n, 'adjust', 100 + n % 400, 'bench', $2::timestamptz + (n % 120) * interval '1 day'
    FROM generate_series(1, $3::int) AS n
    RETURNING entry_id, customer_id, points, expires_at
)
INSERT INTO point_lots (store_id, customer_id, entry_id, points, remaining, available_at, expires_at)
SELECT $1, customer_id, entry_id, points, points, $2::timestamptz, expires_at FROM entries
"""

_TRIGGERS = [
    {"kind": "birthday", "days_before": 2, "gift": {"kind": "voucher", "value": 500}},
    {"kind": "anniversary", "gift": {"kind": "voucher", "value": 300}},
    {"kind": "milestone", "orders": [3, 5, 10], "gift": {"kind": "voucher", "value": 1000}},
    {"kind": "tier_welcome"},
    {"kind": "win_back", "overdue_factor": 2.0, "gift": {"kind": "voucher", "value": 500}},
    {"kind": "service_recovery", "gift": {"kind": "voucher", "value": 1000}},
    {"kind": "tier_within_reach", "within_percent": 10},
    {"kind": "points_expiring", "days_before": 30},
]


async def run(members: int, orders: int, with_preview: bool) -> None:
    async with bench_database() as url:
        pool = await database.create_pool(url, size=2)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            now = datetime.now(UTC)
            async with pool.acquire() as conn, conn.transaction():
                store_id = (await stores.create_store(conn, StoreCreate(name="bench"), now=now)).store_id
            started = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(_LOAD_MEMBERS, store_id, now, members)
                await conn.execute(_LOAD_ORDERS, store_id, now, members, orders)
                await conn.execute(_LOAD_LOTS, store_id, now, members)
            async with pool.acquire() as conn:
                for table in ("members", "orders", "point_lots", "ledger_entries"):
                    await conn.execute(f"ANALYZE {table}")
            loaded = time.perf_counter() - started
            print(f"loaded {members:,} members, {members * orders:,} orders in {loaded:.1f} s")

            triggers = msgspec.convert(_TRIGGERS, list[Trigger])
            program = msgspec.structs.replace(
                default_program(),
                care=Care(
                    gift_budget_per_month=2_000_000,
                    triggers=triggers,
                    quiet_hours=QuietHours(start="00:00", end="00:00"),
                ),
            )
            for label in ("first scan", "second scan (idempotent re-run)"):
                async with pool.acquire() as conn, conn.transaction():
                    started = time.perf_counter()
                    result = await care.scan(conn, store_id=store_id, now=now, program=program)
                    elapsed = time.perf_counter() - started
                issued = {count.trigger: count.actions for count in result.actions}
                print(
                    f"{label}: {elapsed:.2f} s, {members / elapsed:,.0f} members/s, "
                    f"{sum(issued.values()):,} actions {issued}"
                )
            if with_preview:
                async with pool.acquire() as conn, conn.transaction():
                    started = time.perf_counter()
                    projection = await care.project_gifts(conn, store_id=store_id, program=program, now=now)
                    elapsed = time.perf_counter() - started
                gifts, cost = projection.gifts, projection.cost
                print(f"30-day gift projection: {elapsed:.2f} s, {gifts:,} gifts, cost {cost:,}")
        finally:
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=4, help="paid orders per member")
    parser.add_argument("--preview", action="store_true", help="also time the 30-day gift projection")
    args = parser.parse_args()
    asyncio.run(run(args.members, args.orders, args.preview))


if __name__ == "__main__":
    main()
