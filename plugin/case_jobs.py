"""`cases.breaches`: flag service cases whose promises fell due, every minute.

Set-based and batched: each transaction flags up to `BATCH` cases (skipping ones locked by a
concurrent event), logs a `breach` event and emits `case.updated` for each. A breach is flagged
once (the flag is in the WHERE), so running twice, or on two workers, changes nothing more.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from loyalty import cases
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import Schedule

log = logging.getLogger(__name__)

BREACHES = "cases.breaches"
SCHEDULES = [Schedule(kind=BREACHES, every=timedelta(minutes=1))]
BATCH = 500


async def flag_breaches(runtime: Runtime, job: Job) -> None:
    """Flag every due promise (of one store if the job names one), a batch per transaction."""
    now = runtime.clock()
    total = 0
    while True:
        async with runtime.pool.acquire() as conn, conn.transaction():
            flagged = await cases.flag_breaches(conn, store_id=job.store_id, now=now, limit=BATCH)
        total += flagged
        if flagged < BATCH:
            break
    if total:
        log.info("flagged %d broken service promises", total)
