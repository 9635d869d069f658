"""Benchmark: publishing a program change that re-evaluates every member's tier, set-based.

    python -m tests.bench.program_change [--members 100000] [--orders 3]

Loads N members with a few paid orders each (generate_series, no per-row round trips) into a
database of its own, settles their tiers under one program, then times (1) the preview of a
candidate with other thresholds and a shorter grace and (2) publishing it: the compare-and-set,
the new version and the one-statement pass over all members that moves tiers and writes
tier_changes and outbox rows. Uses PATRON_BENCH_DATABASE_URL, else PATRON_TEST_DATABASE_URL, else
an embedded PostgreSQL in a temporary directory; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from loyalty import program_preview, programs, stores
from loyalty.program import Level, Program, default_program
from loyalty.stores import StoreCreate
from plugin import database, embedded
from plugin.migrations import migrate

# Spend per member is spread over 0 … ~300000 minor units across the levels; orders fall over
# the last 400 days so the 365-day window cuts some of them off.
_LOAD_MEMBERS = """
INSERT INTO members (store_id, customer_id, tier_code, tier_since)
SELECT $1, 'c' || n, 'member', $2::timestamptz - interval '400 days'
FROM generate_series(1, $3::int) AS n
"""
_LOAD_ORDERS = """
INSERT INTO orders (store_id, order_id, customer_id, currency, subtotal, total, placed_at, points)
SELECT $1, 'o' || n || '-' || k, 'c' || n, 'EUR', s, s,
       $2::timestamptz - ((n * 31 + k * 97) % 400) * interval '1 day', s / 100
FROM generate_series(1, $3::int) AS n,
     generate_series(1, $4::int) AS k,
     LATERAL (SELECT ((n * 7919 + k * 104729) % 100000)::bigint AS s) AS amount
"""


def with_tiers(program: Program, silver: int, gold: int, grace_days: int) -> Program:
    levels = [
        Level(code="member", name="Member", threshold=0, multiplier=1.0),
        Level(code="silver", name="Silver", threshold=silver, multiplier=1.25),
        Level(code="gold", name="Gold", threshold=gold, multiplier=1.5),
    ]
    tiers = msgspec.structs.replace(program.tiers, levels=levels, downgrade_grace_days=grace_days)
    return msgspec.structs.replace(program, tiers=tiers, version=None)


@contextlib.asynccontextmanager
async def bench_database() -> AsyncIterator[str]:
    server_url = os.environ.get("PATRON_BENCH_DATABASE_URL") or os.environ.get("PATRON_TEST_DATABASE_URL")
    handle = None
    with tempfile.TemporaryDirectory(prefix="patron-bench-") as data_dir:
        if server_url is None:
            server_url, handle = await asyncio.to_thread(embedded.start_postgres, Path(data_dir))
        name = "patron_bench_" + secrets.token_hex(4)
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield urlunsplit(urlsplit(server_url)._replace(path="/" + name))
            finally:
                await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
            if handle is not None:
                await asyncio.to_thread(embedded.EmbeddedServers(server_url, "", [handle]).close)


async def run(members: int, orders: int) -> None:
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
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE members")
                await conn.execute("ANALYZE orders")
            loaded = time.perf_counter() - started
            print(f"loaded {members:,} members and {members * orders:,} orders in {loaded:.1f} s")

            current = default_program()
            async with pool.acquire() as conn, conn.transaction():
                started = time.perf_counter()
                await programs.publish(
                    conn, store_id=store_id, program=current, expected_version=1, actor="bench", now=now
                )
                settled = time.perf_counter() - started
            print(f"settling every member's tier (publish v2):  {settled:.2f} s")

            candidate = with_tiers(current, silver=30_000, gold=100_000, grace_days=0)
            async with pool.acquire() as conn:
                started = time.perf_counter()
                preview = await program_preview.preview(conn, store_id=store_id, candidate=candidate, now=now)
                previewed = time.perf_counter() - started
            moved = sum(move.members for move in preview.tier_moves)
            print(f"preview of the change:                      {previewed:.2f} s ({moved:,} would move)")

            async with pool.acquire() as conn, conn.transaction():
                started = time.perf_counter()
                await programs.publish(
                    conn, store_id=store_id, program=candidate, expected_version=2, actor="bench", now=now
                )
                elapsed = time.perf_counter() - started
                changes = await conn.fetchval(
                    "SELECT count(*) FROM tier_changes WHERE store_id = $1 AND program_version = 3", store_id
                )
            print(f"program change over {members:,} members: {elapsed:.2f} s ({changes:,} tier changes)")
            if changes != moved:
                print(f"preview said {moved} moves, publishing made {changes}", file=sys.stderr)
                raise SystemExit(1)
        finally:
            await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=3, help="paid orders per member")
    args = parser.parse_args()
    asyncio.run(run(args.members, args.orders))


if __name__ == "__main__":
    main()
