"""The daily tier pass: downgrades whose grace has run out happen here (and upgrades any event missed).

The schedule enqueues one `tiers.evaluate` job without a store; that job fans out one job per
store (deduplicated per day), so stores are evaluated in parallel by any number of workers and a
failing store is retried alone. Re-running a pass is harmless: it only applies what is due.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from loyalty import programs
from plugin.repository import jobs
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import Schedule

log = logging.getLogger(__name__)

KIND = "tiers.evaluate"
SCHEDULE = Schedule(kind=KIND, every=timedelta(days=1))


async def evaluate_tiers(runtime: Runtime, job: Job) -> None:
    """Fan out to every store (scheduled run), or evaluate every member of one store."""
    now = runtime.clock()
    async with runtime.pool.acquire() as conn, conn.transaction():
        if job.store_id is None:
            await jobs.enqueue_per_store(conn, kind=KIND, dedupe_prefix=f"{KIND}:{now.date()}:")
            return
        changed = await programs.evaluate_store(
            conn, store_id=job.store_id, now=now, reason="daily evaluation"
        )
    log.info("tier pass for store %s: %d level changes", job.store_id, changed)
