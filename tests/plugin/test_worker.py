"""The worker: jobs run once, failures retry then dead-letter, dead workers' jobs come back,
several workers share a queue, schedules fire once per period, and stopping is orderly."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from plugin import care_jobs, lifespan, recommender_jobs
from plugin.repository import jobs
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import JobHandler, Schedule, Worker, retry_delay
from tests.conftest import eventually

KIND = "test.record"


@pytest.fixture
async def queue(runtime: Runtime) -> AsyncIterator[Runtime]:
    """The runtime, with an empty job queue before and after the test."""
    async with runtime.pool.acquire() as conn:
        await conn.execute("DELETE FROM jobs")
    yield runtime
    async with runtime.pool.acquire() as conn:
        await conn.execute("DELETE FROM jobs")


def make_worker(runtime: Runtime, handlers: dict[str, JobHandler], **overrides: Any) -> Worker:
    fields: dict[str, Any] = {"lease_seconds": 30.0, "poll_seconds": 0.02, "grace_seconds": 1.0}
    return Worker(runtime=runtime, handlers=handlers, **(fields | overrides))


def recorder(runs: Counter[int], *, seconds: float = 0.0) -> JobHandler:
    async def record(_: Runtime, job: Job) -> None:
        if seconds:
            await asyncio.sleep(seconds)
        runs[job.job_id] += 1

    return record


async def enqueue(runtime: Runtime, kind: str = KIND, **fields: Any) -> int:
    async with runtime.pool.acquire() as conn:
        job_id = await jobs.enqueue(conn, kind=kind, **fields)
    assert job_id is not None
    return job_id


async def row(runtime: Runtime, job_id: int) -> dict[str, Any]:
    async with runtime.pool.acquire() as conn:
        record = await conn.fetchrow(
            "SELECT attempts, locked_by, finished_at, failed_at, last_error,"
            " extract(epoch FROM run_at - now())::float8 AS due_in FROM jobs WHERE job_id = $1",
            job_id,
        )
    assert record is not None
    return dict(record)


async def sql(runtime: Runtime, query: str, *args: Any) -> None:
    async with runtime.pool.acquire() as conn:
        await conn.execute(query, *args)


async def finished_count(runtime: Runtime) -> int:
    async with runtime.pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL")
    return count


def test_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert retry_delay(40) == 3600.0


def test_workers_in_one_process_have_distinct_names(runtime: Runtime) -> None:
    names = {make_worker(runtime, {}).name for _ in range(5)}
    assert len(names) == 5


@pytest.mark.parametrize("train_in_worker", [True, False])
def test_the_daily_training_is_scheduled_unless_turned_off(runtime: Runtime, train_in_worker: bool) -> None:
    settings = msgspec.structs.replace(runtime.settings, train_in_worker=train_in_worker)
    worker = lifespan.make_worker(dataclasses.replace(runtime, settings=settings))
    kinds = {schedule.kind for schedule in worker.schedules}
    assert (recommender_jobs.REFRESH in kinds) is train_in_worker
    assert care_jobs.KIND in kinds
    # An enqueued refresh still runs either way.
    assert recommender_jobs.REFRESH in worker.handlers


async def test_a_job_runs_once(queue: Runtime) -> None:
    runs: Counter[int] = Counter()
    worker = make_worker(queue, {KIND: recorder(runs)})
    job_id = await enqueue(queue, payload={"n": 1})
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert runs == {job_id: 1}
    state = await row(queue, job_id)
    assert state["attempts"] == 1
    assert state["finished_at"] is not None
    assert state["locked_by"] is None


async def test_a_handler_gets_the_payload(queue: Runtime) -> None:
    seen: list[Job] = []

    async def keep(_: Runtime, job: Job) -> None:
        seen.append(job)

    await enqueue(queue, payload={"member": "c-1", "points": 5}, max_attempts=2)
    await make_worker(queue, {KIND: keep}).run_once()
    assert [(job.kind, job.payload, job.max_attempts) for job in seen] == [
        (KIND, {"member": "c-1", "points": 5}, 2)
    ]


async def test_a_failing_job_backs_off_then_dead_letters(queue: Runtime) -> None:
    calls = 0

    async def boom(_: Runtime, job: Job) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError(f"boom {job.attempts}")

    worker = make_worker(queue, {KIND: boom})
    job_id = await enqueue(queue, max_attempts=3)
    for attempt in (1, 2):
        assert await worker.run_once() == 1
        state = await row(queue, job_id)
        assert (state["attempts"], state["failed_at"], state["last_error"]) == (
            attempt,
            None,
            f"RuntimeError: boom {attempt}",
        )
        assert retry_delay(attempt) - 1 < state["due_in"] <= retry_delay(attempt)
        assert await worker.run_once() == 0  # backing off
        await sql(queue, "UPDATE jobs SET run_at = now() WHERE job_id = $1", job_id)
    assert await worker.run_once() == 1
    state = await row(queue, job_id)
    assert state["attempts"] == 3
    assert state["failed_at"] is not None
    assert state["finished_at"] is None
    await sql(queue, "UPDATE jobs SET run_at = now() WHERE job_id = $1", job_id)
    assert await worker.run_once() == 0
    assert calls == 3


async def test_a_job_nobody_handles_fails_saying_so(queue: Runtime) -> None:
    job_id = await enqueue(queue, kind="test.nobody", max_attempts=1)
    await make_worker(queue, {}).run_once()
    state = await row(queue, job_id)
    assert state["failed_at"] is not None
    assert state["last_error"] == "LookupError: no handler for job kind 'test.nobody'"


class TestLeases:
    async def test_a_job_whose_worker_died_is_claimed_again(self, queue: Runtime) -> None:
        runs: Counter[int] = Counter()
        job_id = await enqueue(queue)
        async with queue.pool.acquire() as conn:
            [claimed] = await jobs.claim(conn, worker="dead-worker", lease_seconds=0.2, limit=5)
        assert claimed.job_id == job_id
        worker = make_worker(queue, {KIND: recorder(runs)})
        assert await worker.run_once() == 0  # the lease still holds
        await asyncio.sleep(0.25)
        assert await worker.run_once() == 1
        assert runs == {job_id: 1}
        state = await row(queue, job_id)
        assert (state["attempts"], state["finished_at"] is not None) == (2, True)

    async def test_a_lapse_on_the_last_attempt_dead_letters(self, queue: Runtime) -> None:
        runs: Counter[int] = Counter()
        job_id = await enqueue(queue, max_attempts=1)
        async with queue.pool.acquire() as conn:
            await jobs.claim(conn, worker="dead-worker", lease_seconds=0.05, limit=5)
        await asyncio.sleep(0.1)
        assert await make_worker(queue, {KIND: recorder(runs)}).run_once() == 0
        assert runs == {}
        state = await row(queue, job_id)
        assert state["failed_at"] is not None
        assert state["locked_by"] is None
        assert "lease" in state["last_error"]

    async def test_a_live_worker_keeps_its_lease_past_the_first_term(self, queue: Runtime) -> None:
        runs: Counter[int] = Counter()
        job_id = await enqueue(queue)
        slow = make_worker(queue, {KIND: recorder(runs, seconds=1.0)}, lease_seconds=0.3)
        other = make_worker(queue, {KIND: recorder(runs)})
        stop = asyncio.Event()
        running = asyncio.create_task(slow.run(stop))
        try:
            assert await eventually(lambda: claimed_by(queue, job_id, slow.name))
            for _ in range(6):  # twice the lease and more: another worker must not take the job
                await asyncio.sleep(0.12)
                assert await other.run_once() == 0
            assert await eventually(lambda: is_finished(queue, job_id))
        finally:
            stop.set()
            await running
        assert runs == {job_id: 1}


async def claimed_by(runtime: Runtime, job_id: int, name: str) -> bool:
    return (await row(runtime, job_id))["locked_by"] == name


async def is_finished(runtime: Runtime, job_id: int) -> bool:
    return (await row(runtime, job_id))["finished_at"] is not None


async def test_several_workers_run_each_job_exactly_once(queue: Runtime) -> None:
    runs: Counter[int] = Counter()
    by_worker: Counter[str] = Counter()

    def handler_for(name: str) -> JobHandler:
        async def record(_: Runtime, job: Job) -> None:
            await asyncio.sleep(0.01)
            runs[job.job_id] += 1
            by_worker[name] += 1

        return record

    job_ids = [await enqueue(queue, payload={"n": n}) for n in range(60)]
    workers = [
        make_worker(queue, {KIND: handler_for(f"w{n}")}, concurrency=4, name=f"w{n}") for n in range(3)
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        assert await eventually(lambda: all_finished(queue, 60), within=10)
    finally:
        stop.set()
        await asyncio.gather(*running)
    assert runs == dict.fromkeys(job_ids, 1)
    assert len(by_worker) >= 2, by_worker


async def all_finished(runtime: Runtime, count: int) -> bool:
    return await finished_count(runtime) == count


async def test_a_schedule_fires_once_per_period_across_workers(queue: Runtime) -> None:
    runs: Counter[int] = Counter()
    now = datetime(2031, 1, 1, 9, 15, tzinfo=UTC)
    clocked = dataclasses.replace(queue, clock=lambda: now)
    schedule = Schedule("test.tick", every=timedelta(hours=1))
    workers = [
        make_worker(clocked, {"test.tick": recorder(runs)}, schedules=[schedule], name=f"w{n}")
        for n in range(3)
    ]

    async def all_once() -> None:
        await asyncio.gather(*(worker.run_once() for worker in workers))

    await all_once()
    await all_once()
    assert sum(runs.values()) == 1
    now += timedelta(minutes=30)  # same period
    await all_once()
    assert sum(runs.values()) == 1
    now += timedelta(minutes=30)  # the next one
    await all_once()
    assert sum(runs.values()) == 2
    assert set(runs.values()) == {1}


class TestStop:
    async def test_in_flight_jobs_finish_within_the_grace(self, queue: Runtime) -> None:
        started = asyncio.Event()
        runs: Counter[int] = Counter()

        async def slow(runtime: Runtime, job: Job) -> None:
            started.set()
            await recorder(runs, seconds=0.3)(runtime, job)

        job_id = await enqueue(queue)
        stop = asyncio.Event()
        running = asyncio.create_task(make_worker(queue, {KIND: slow}, grace_seconds=2).run(stop))
        await asyncio.wait_for(started.wait(), 5)
        stop.set()
        await asyncio.wait_for(running, 2)
        assert runs == {job_id: 1}
        assert (await row(queue, job_id))["finished_at"] is not None

    async def test_jobs_past_the_grace_are_released_without_using_an_attempt(self, queue: Runtime) -> None:
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def stuck(_: Runtime, job: Job) -> None:
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        job_id = await enqueue(queue, max_attempts=1)
        stop = asyncio.Event()
        running = asyncio.create_task(make_worker(queue, {KIND: stuck}, grace_seconds=0.1).run(stop))
        await asyncio.wait_for(started.wait(), 5)
        stop.set()
        await asyncio.wait_for(running, 2)
        assert cancelled.is_set()
        state = await row(queue, job_id)
        assert (state["attempts"], state["locked_by"], state["finished_at"], state["failed_at"]) == (
            0,
            None,
            None,
            None,
        )
        # Released, so the next worker runs it at once, on its one and only attempt.
        runs: Counter[int] = Counter()
        assert await make_worker(queue, {KIND: recorder(runs)}).run_once() == 1
        assert runs == {job_id: 1}


async def test_a_cancelled_refresh_kills_its_training_process(runtime: Runtime) -> None:
    import psutil

    job = Job(
        job_id=0, kind=recommender_jobs.REFRESH, store_id="no-store", payload={}, attempts=0, max_attempts=1
    )
    refresh = asyncio.create_task(recommender_jobs.refresh(runtime, job))

    def training() -> list[psutil.Process]:
        return [
            child
            for child in psutil.Process().children(recursive=True)
            if "train" in child.cmdline() and "plugin.cli" in child.cmdline()
        ]

    for _ in range(200):
        if training() or refresh.done():
            break
        await asyncio.sleep(0.05)
    started = training()
    assert started, "the training process never started"
    refresh.cancel()
    with pytest.raises(asyncio.CancelledError):
        await refresh
    assert all(not process.is_running() or process.status() == psutil.STATUS_ZOMBIE for process in started)
