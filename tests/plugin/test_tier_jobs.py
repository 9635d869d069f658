"""The daily tier pass: scheduled once, fanned out per store, downgrades after the grace."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import asyncpg

from loyalty.stores import StoreCreated
from plugin import tier_jobs
from plugin.jobs import JOB_HANDLERS, SCHEDULES
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from tests.sql_rows import insert_member, insert_order, tier_of

NOW = datetime(2025, 6, 1, 3, tzinfo=UTC)


def job(store_id: str | None) -> Job:
    return Job(job_id=0, kind=tier_jobs.KIND, store_id=store_id, payload={}, attempts=1, max_attempts=5)


def test_the_pass_is_registered_daily() -> None:
    assert JOB_HANDLERS[tier_jobs.KIND] is tier_jobs.evaluate_tiers
    assert tier_jobs.SCHEDULE in SCHEDULES
    assert tier_jobs.SCHEDULE.every == timedelta(days=1)


async def test_daily_pass_fans_out_and_downgrades_after_grace(
    runtime: Runtime, pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await insert_member(conn, sid, "lapsed", tier_code="gold", below_since=NOW - timedelta(days=31))
        await insert_member(conn, sid, "waiting", tier_code="gold", below_since=NOW - timedelta(days=29))
        await insert_member(conn, sid, "rising")
        await insert_order(conn, sid, "rising", subtotal=200_000, placed_at=NOW - timedelta(days=1))
    # The worker's own pool lives in the test client's loop; the pass runs on the tests' pool.
    worker_runtime = dataclasses.replace(runtime, pool=pool, clock=lambda: NOW)
    prefix = f"{tier_jobs.KIND}:{NOW.date()}:"
    try:
        await tier_jobs.evaluate_tiers(worker_runtime, job(None))
        await tier_jobs.evaluate_tiers(worker_runtime, job(None))
        async with pool.acquire() as conn:
            queued = await conn.fetch("SELECT kind, store_id FROM jobs WHERE dedupe_key = $1", prefix + sid)
            assert [(row["kind"], row["store_id"]) for row in queued] == [(tier_jobs.KIND, sid)]

        await tier_jobs.evaluate_tiers(worker_runtime, job(sid))
        async with pool.acquire() as conn:
            assert await tier_of(conn, sid, "lapsed") == ("member", NOW, None)
            assert (await tier_of(conn, sid, "waiting"))[0] == "gold"
            assert (await tier_of(conn, sid, "rising"))[0] == "gold"
            reasons = await conn.fetch(
                "SELECT customer_id, reason FROM tier_changes WHERE store_id = $1 ORDER BY customer_id", sid
            )
        assert [(r["customer_id"], r["reason"]) for r in reasons] == [
            ("lapsed", "downgrade after grace (daily evaluation)"),
            ("rising", "upgrade (daily evaluation)"),
        ]
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM jobs WHERE dedupe_key LIKE $1", prefix + "%")
