"""The job queue's SQL: dedupe, due times, SKIP LOCKED claims, lease ownership, release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from loyalty.repository import Connection
from plugin.repository import jobs
from plugin.runtime import Runtime


@pytest.fixture
async def conn(runtime: Runtime) -> AsyncIterator[Connection]:
    """A connection to an empty queue (emptied again afterwards)."""
    async with runtime.pool.acquire() as conn:
        await conn.execute("DELETE FROM jobs")
        yield conn
        await conn.execute("DELETE FROM jobs")


async def enqueue_many(conn: Connection, count: int, **fields: Any) -> list[int]:
    ids = [await jobs.enqueue(conn, kind="test.repo", payload={"n": n}, **fields) for n in range(count)]
    assert None not in ids
    return [job_id for job_id in ids if job_id is not None]


async def test_a_dedupe_key_enqueues_once(conn: Connection) -> None:
    first = await jobs.enqueue(conn, kind="test.repo", dedupe_key="once")
    assert first is not None
    assert await jobs.enqueue(conn, kind="test.repo", dedupe_key="once") is None
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 1


async def test_a_future_job_is_not_claimed_before_its_time(conn: Connection) -> None:
    now = await conn.fetchval("SELECT now()")
    await jobs.enqueue(conn, kind="test.repo", run_at=now + timedelta(hours=1))
    assert await jobs.claim(conn, worker="w", lease_seconds=30, limit=10) == []


async def test_claims_come_oldest_first_up_to_the_limit(conn: Connection) -> None:
    ids = await enqueue_many(conn, 5)
    claimed = await jobs.claim(conn, worker="w", lease_seconds=30, limit=3)
    assert sorted(job.job_id for job in claimed) == ids[:3]  # which ones; RETURNING has no order
    assert all(job.attempts == 1 for job in claimed)


async def test_concurrent_claims_never_share_a_job(runtime: Runtime, conn: Connection) -> None:
    ids = await enqueue_many(conn, 40)

    async def claim_as(name: str) -> list[int]:
        got: list[int] = []
        async with runtime.pool.acquire() as own:
            while batch := await jobs.claim(own, worker=name, lease_seconds=30, limit=3):
                got += [job.job_id for job in batch]
        return got

    claims = await asyncio.gather(*(claim_as(f"w{n}") for n in range(4)))
    every = [job_id for claim in claims for job_id in claim]
    assert sorted(every) == ids


async def test_only_the_lease_holder_can_finish_or_fail(conn: Connection) -> None:
    [job_id] = await enqueue_many(conn, 1)
    await jobs.claim(conn, worker="owner", lease_seconds=30, limit=1)
    await jobs.finish(conn, job_id=job_id, worker="intruder")
    await jobs.fail(conn, job_id=job_id, worker="intruder", error="no", retry_in=0)
    state = await jobs.state(conn, job_id=job_id)
    assert state is not None
    assert (state.finished_at, state.failed_at, state.last_error) == (None, None, None)
    await jobs.finish(conn, job_id=job_id, worker="owner")
    state = await jobs.state(conn, job_id=job_id)
    assert state is not None
    assert state.finished_at is not None


async def test_extending_a_lease_keeps_the_job(conn: Connection) -> None:
    [job_id] = await enqueue_many(conn, 1)
    await jobs.claim(conn, worker="owner", lease_seconds=0.2, limit=1)
    await jobs.extend(conn, job_ids=[job_id], worker="owner", lease_seconds=30)
    await jobs.extend(conn, job_ids=[job_id], worker="intruder", lease_seconds=0)
    await asyncio.sleep(0.25)
    assert await jobs.claim(conn, worker="other", lease_seconds=30, limit=1) == []


async def test_release_gives_the_attempt_back(conn: Connection) -> None:
    [job_id] = await enqueue_many(conn, 1)
    await jobs.claim(conn, worker="owner", lease_seconds=30, limit=1)
    await jobs.release(conn, job_ids=[job_id], worker="owner")
    [again] = await jobs.claim(conn, worker="other", lease_seconds=30, limit=1)
    assert (again.job_id, again.attempts) == (job_id, 1)


async def test_state_of_an_unknown_job_is_none(conn: Connection) -> None:
    assert await jobs.state(conn, job_id=-1) is None
