"""Benchmark: one care scan over a whole store, set-based (no per-member round trips).

    python -m tests.bench.care_scan [--members 100000] [--orders 4] [--k 50] [--preview]

Loads N members (birthdays, consent, join dates and orders spread with generate_series, lots
expiring over the next months) into a database of its own, publishes a top-k `discover` list per
member to Redis (as `patron train` does), then times the scan under a program with every trigger
but `replenish` enabled (an anniversary gives points, so gifts are credited to the ledger): once (it
issues actions, `recommended_next` reading the lists of the members it can reach in bulk), and
again (the idempotent re-run, which issues nothing). `--preview` also times the 30-day gift
projection. Uses PATRON_BENCH_DATABASE_URL, else PATRON_TEST_DATABASE_URL, else an embedded
PostgreSQL; PATRON_BENCH_REDIS_URL, else an embedded Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
from redis.asyncio import Redis

from loyalty import care, stores
from loyalty.program import Care, QuietHours, Trigger, default_program
from loyalty.stores import StoreCreate
from plugin import care_jobs, database, embedded
from plugin.migrations import migrate
from recommender import publishing, serving
from recommender.dataset import Catalogue
from recommender.lists import SIMILAR_MEMBERS, TopLists
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
    {"kind": "anniversary", "gift": {"kind": "points", "value": 300}},
    {"kind": "milestone", "orders": [3, 5, 10], "gift": {"kind": "voucher", "value": 1000}},
    {"kind": "tier_welcome"},
    {"kind": "win_back", "overdue_factor": 2.0, "gift": {"kind": "voucher", "value": 500}},
    {"kind": "service_recovery", "gift": {"kind": "voucher", "value": 1000}},
    {"kind": "tier_within_reach", "within_percent": 10},
    {"kind": "points_expiring", "days_before": 30},
    {"kind": "recommended_next"},
]


@asynccontextmanager
async def bench_redis() -> AsyncIterator[Redis]:
    url, handle = os.environ.get("PATRON_BENCH_REDIS_URL"), None
    with tempfile.TemporaryDirectory(prefix="patron-bench-") as data_dir:
        if url is None:
            url, handle = await asyncio.to_thread(embedded.start_redis, Path(data_dir))
        redis = Redis.from_url(url)
        try:
            yield redis
        finally:
            await redis.aclose()
            if handle is not None:
                await asyncio.to_thread(embedded.EmbeddedServers("", url, [handle]).close)


async def publish_lists(redis: Redis, store_id: str, members: int, k: int) -> float:
    """A random top-k per list for every member over a 10,000-product catalogue; returns seconds."""
    rng = np.random.default_rng(7)
    n_items = 10_000
    catalogue = Catalogue(
        product=np.array([f"p{i:05d}" for i in range(n_items)], dtype=np.str_),
        category=np.array([f"c{i % 50}" for i in range(n_items)], dtype=np.str_),
        brand=np.array([f"b{i % 200}" for i in range(n_items)], dtype=np.str_),
        price=np.full(n_items, 1000.0),
        tags=[() for _ in range(n_items)],
        consumable_days=np.full(n_items, np.nan),
        active=np.ones(n_items, dtype=bool),
    )
    items = rng.integers(0, n_items, (members, k))
    scores = np.sort(rng.random((members, k)).astype(np.float32), axis=1)[:, ::-1]
    top = TopLists(
        members=np.array([f"c{n}" for n in range(1, members + 1)], dtype=np.str_),
        again_items=items,
        again_scores=scores,
        again_reasons=np.zeros((members, k), dtype=np.int8),
        discover_items=(items + 1) % n_items,
        discover_scores=scores,
        discover_reasons=np.full((members, k), SIMILAR_MEMBERS, dtype=np.int8),
        mixed_source=np.zeros((members, k), dtype=np.int8),
        mixed_position=np.tile(np.arange(k), (members, 1)),
    )
    started = time.perf_counter()
    await publishing.publish(
        redis,
        store_id=store_id,
        version=1,
        top=top,
        catalogue=catalogue,
        popularity=np.ones(n_items),
        facts=None,
        k=k,
    )
    await serving.switch(redis, store_id=store_id, version=1)
    return time.perf_counter() - started


async def run(members: int, orders: int, k: int, with_preview: bool) -> None:
    async with bench_database() as url, bench_redis() as redis:
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
            published = await publish_lists(redis, store_id, members, k)
            print(
                f"loaded {members:,} members, {members * orders:,} orders in {loaded:.1f} s; "
                f"top-{k} lists to Redis in {published:.1f} s"
            )

            triggers = msgspec.convert(_TRIGGERS, list[Trigger])
            program = msgspec.structs.replace(
                default_program(),
                care=Care(
                    gift_budget_per_month=2_000_000,
                    triggers=triggers,
                    quiet_hours=QuietHours(start="00:00", end="00:00"),
                ),
            )
            read = care_jobs.recommendations_from(redis)
            reading: list[float] = []

            async def timed_read(
                store: str, customer_ids: Sequence[str], products: int
            ) -> care.Recommendations:
                started = time.perf_counter()
                picks = await read(store, customer_ids, products)
                reading.append(time.perf_counter() - started)
                return picks

            sources = care.CareSources(recommendations=timed_read)
            seconds: list[float] = []
            for label in ("first scan", "second scan (idempotent re-run)"):
                reading.clear()
                async with pool.acquire() as conn, conn.transaction():
                    started = time.perf_counter()
                    result = await care.scan(
                        conn, store_id=store_id, now=now, program=program, sources=sources
                    )
                    elapsed = time.perf_counter() - started
                seconds.append(elapsed)
                issued = {count.trigger: count.actions for count in result.actions}
                print(
                    f"{label}: {elapsed:.2f} s, {members / elapsed:,.0f} members/s, "
                    f"{sum(issued.values()):,} actions {issued}, {result.points_credited:,} points gifts "
                    f"credited; lists read for recommended_next in {sum(reading):.2f} s"
                )
            if with_preview:
                async with pool.acquire() as conn, conn.transaction():
                    started = time.perf_counter()
                    projection = await care.project_gifts(conn, store_id=store_id, program=program, now=now)
                    elapsed = time.perf_counter() - started
                print(
                    f"30-day gift projection: {elapsed:.2f} s ({elapsed / seconds[-1]:.1f} idempotent scans "
                    f"of this run; the 30 replayed scans it replaces: {30 * seconds[-1]:.0f} s), "
                    f"{projection.gifts:,} gifts {projection.by_trigger}, cost {projection.cost:,}"
                )
        finally:
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=4, help="paid orders per member")
    parser.add_argument("--k", type=int, default=50, help="entries per precomputed list")
    parser.add_argument("--preview", action="store_true", help="also time the 30-day gift projection")
    args = parser.parse_args()
    asyncio.run(run(args.members, args.orders, args.k, args.preview))


if __name__ == "__main__":
    main()
