"""The background worker: scheduled jobs and queued work, claimed safely by any number of workers.

Each worker claims due jobs with `FOR UPDATE SKIP LOCKED` under a lease, which it renews while
the job runs. A job that raises is retried with backoff until its attempts run out; a worker that
dies mid-job stops renewing, loses its lease, and another worker takes the job (on the job's last
attempt it is dead-lettered instead). On stop, in-flight jobs get a grace period to finish and are
released (not failed) if they do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plugin.repository import jobs
from plugin.repository.jobs import Job
from plugin.runtime import Runtime

log = logging.getLogger(__name__)

JobHandler = Callable[[Runtime, Job], Awaitable[None]]
Pump = Callable[[Runtime, asyncio.Event], Awaitable[None]]
"""A loop of its own beside the job queue (outbox delivery), run until the event is set."""


@dataclass(frozen=True)
class Schedule:
    """A job kind enqueued once per period, whichever worker gets there first."""

    kind: str
    every: timedelta

    def dedupe_key(self, now: datetime) -> str:
        period = int(now.timestamp() // self.every.total_seconds())
        return f"schedule:{self.kind}:{period}"


def retry_delay(attempts: int) -> float:
    """Exponential backoff: 2, 4, 8 … seconds, capped at an hour."""
    return float(min(2**attempts, 3600))


@dataclass
class Worker:
    runtime: Runtime
    handlers: Mapping[str, JobHandler]
    schedules: Sequence[Schedule] = ()
    pumps: Sequence[Pump] = ()
    concurrency: int = 4
    lease_seconds: float = 300.0
    poll_seconds: float = 1.0
    grace_seconds: float = 10.0
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    _running: dict[int, asyncio.Task[None]] = field(default_factory=dict, init=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then finish or release what is in flight."""
        log.info("worker %s started", self.name)
        leases = asyncio.create_task(self._keep_leases(), name=f"worker-leases-{self.name}")
        pumps = [
            asyncio.create_task(self._pump(pump, stop), name=f"pump-{pump.__name__}") for pump in self.pumps
        ]
        try:
            while not stop.is_set():
                try:
                    await self._schedule()
                    claimed = await self._claim()
                except Exception:
                    log.exception("worker %s could not reach the queue", self.name)
                    claimed = 0
                if claimed == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_seconds)
                else:
                    await asyncio.sleep(0)
        finally:
            await self._drain()
            await asyncio.gather(*pumps)
            leases.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leases
            log.info("worker %s stopped", self.name)

    async def _pump(self, pump: Pump, stop: asyncio.Event) -> None:
        # A pump that dies is restarted: it owns work nothing else picks up.
        while not stop.is_set():
            try:
                await pump(self.runtime, stop)
            except Exception:
                log.exception("worker %s: pump %s failed; restarting", self.name, pump.__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)

    async def run_once(self) -> int:
        """Claim and run whatever is due now, waiting for it; for tests and one-shot commands."""
        await self._schedule()
        claimed = await self._claim()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
        return claimed

    async def _keep_leases(self) -> None:
        """Renew the leases of running jobs every third of a lease, so a job that outlasts one lease
        is not taken by another worker: only a worker that stops renewing (it died) loses its jobs."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if not self._running:
                continue
            try:
                async with self.runtime.pool.acquire() as conn:
                    await jobs.extend(
                        conn, job_ids=list(self._running), worker=self.name, lease_seconds=self.lease_seconds
                    )
            except Exception:
                log.warning("worker %s could not renew its leases", self.name, exc_info=True)

    async def _schedule(self) -> None:
        if not self.schedules:
            return
        now = self.runtime.clock()
        async with self.runtime.pool.acquire() as conn:
            for schedule in self.schedules:
                await jobs.enqueue(conn, kind=schedule.kind, dedupe_key=schedule.dedupe_key(now))

    async def _claim(self) -> int:
        free = self.concurrency - len(self._running)
        if free <= 0:
            return 0
        async with self.runtime.pool.acquire() as conn:
            claimed = await jobs.claim(conn, worker=self.name, lease_seconds=self.lease_seconds, limit=free)
        for job in claimed:
            task = asyncio.create_task(self._execute(job), name=f"job-{job.job_id}-{job.kind}")
            self._running[job.job_id] = task
            task.add_done_callback(self._forget(job.job_id))
        return len(claimed)

    def _forget(self, job_id: int) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._running.pop(job_id, None)

        return forget

    async def _execute(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await handler(self.runtime, job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s (%s) failed on attempt %s", job.job_id, job.kind, job.attempts)
            async with self.runtime.pool.acquire() as conn:
                await jobs.fail(
                    conn,
                    job_id=job.job_id,
                    worker=self.name,
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                    retry_in=retry_delay(job.attempts),
                )
        else:
            async with self.runtime.pool.acquire() as conn:
                await jobs.finish(conn, job_id=job.job_id, worker=self.name)

    async def _drain(self) -> None:
        if not self._running:
            return
        tasks = dict(self._running)
        _, pending = await asyncio.wait(tasks.values(), timeout=self.grace_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        unfinished = [job_id for job_id, task in tasks.items() if task in pending]
        if unfinished:
            async with self.runtime.pool.acquire() as conn:
                await jobs.release(conn, job_ids=unfinished, worker=self.name)
            log.info("worker %s released %d unfinished jobs", self.name, len(unfinished))
