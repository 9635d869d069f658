"""Benchmark: warm profile reads against the bare Redis GET of the same cached bytes, in one run.

Standalone: `python -m tests.bench.profile [--reads N] [--concurrency C]`. Uses
PATRON_TEST_DATABASE_URL (a scratch database on it, dropped after) / PATRON_TEST_REDIS_URL when
set, else embedded servers in a temp dir.
Measured in-process (no HTTP on either side): the baseline is `redis.get(key)` of the cached entry;
a warm profile read is `profile_cache.profile()` — the PostgreSQL version lookup concurrently with
that same GET, the freshness check and the decode. Ratio = profile throughput / baseline
throughput (target >= 0.6). Also prints p50/p99 of each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

import msgspec

from loyalty import members, programs, stores
from loyalty.events import Customer
from loyalty.stores import StoreCreate
from plugin import profile_cache
from plugin.lifespan import open_runtime
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.conftest import scratch_database


async def _timed(
    call: Callable[[], Awaitable[object]], reads: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(reads // concurrency) for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


def _pct(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100)[int(q) - 1] * 1e6


async def _setup(runtime: Runtime) -> tuple[str, str]:
    now = runtime.clock()
    async with runtime.pool.acquire() as conn, conn.transaction():
        created = await stores.create_store(
            conn, StoreCreate(name="bench", currency="EUR", timezone="Europe/Berlin")
        )
        program = await programs.live_program(conn, store_id=created.store_id)
        await members.lock_from_orders(
            conn, store_id=created.store_id, customers=[Customer(customer_id="c1")], program=program, now=now
        )
    return created.store_id, "c1"


async def run(reads: int, concurrency: int) -> None:
    server_url = os.environ.get("PATRON_TEST_DATABASE_URL")
    if server_url is None:
        await _run(None, reads, concurrency)
        return
    # A database of its own on a shared server, dropped afterwards: the server is left as found.
    async with scratch_database(server_url) as database_url:
        await _run(database_url, reads, concurrency)


async def _run(database_url: str | None, reads: int, concurrency: int) -> None:
    settings = Settings(
        database_url=database_url,
        redis_url=os.environ.get("PATRON_TEST_REDIS_URL"),
        data_dir=tempfile.mkdtemp(prefix="patron-bench-"),
        worker=False,
        log_level="WARNING",
    )
    async with open_runtime(settings) as runtime:
        store_id, cid = await _setup(runtime)
        await profile_cache.profile(runtime, store_id=store_id, customer_id=cid)  # warm it
        cleanup = [profile_cache.cache_key(store_id, cid)]
        key = profile_cache.cache_key(store_id, cid)
        for _ in range(2):  # first round warms connections and code paths
            base_rps, base = await _timed(lambda: runtime.redis.get(key), reads, concurrency)
            prof_rps, prof = await _timed(
                lambda: profile_cache.profile(runtime, store_id=store_id, customer_id=cid), reads, concurrency
            )
        print(
            msgspec.json.encode(
                {
                    "reads": reads,
                    "concurrency": concurrency,
                    "redis_get_rps": round(base_rps),
                    "profile_rps": round(prof_rps),
                    "ratio": round(prof_rps / base_rps, 3),
                    "redis_get_p50_us": round(_pct(base, 50)),
                    "redis_get_p99_us": round(_pct(base, 99)),
                    "profile_p50_us": round(_pct(prof, 50)),
                    "profile_p99_us": round(_pct(prof, 99)),
                }
            ).decode()
        )
        await runtime.redis.delete(*cleanup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.reads, args.concurrency))


if __name__ == "__main__":
    main()
