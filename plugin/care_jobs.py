"""The hourly care scan: scheduled once, fanned out one job per store (like the tier pass).

Hourly, although most triggers are daily: it is what moves deferred actions out of the quiet
hours (an action decided at night is emitted by the first scan after the quiet hours end) and
what keeps `tier_welcome` close to the upgrade. Re-running a scan is harmless: every action is
unique per member, trigger and period, and scans of one store queue on a lock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from loyalty import care
from loyalty.care import CareSources
from loyalty.repository import Connection
from plugin import metrics
from plugin.repository import jobs
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import Schedule
from recommender import needs as recommender_needs

log = logging.getLogger(__name__)

KIND = "care.scan"
SCHEDULE = Schedule(kind=KIND, every=timedelta(hours=1))


async def _needs(conn: Connection, store_id: str, now: datetime, horizon_days: int) -> list[care.Need]:
    """The recommender's repurchase rhythms: what each member will need by `now + horizon_days`."""
    found = await recommender_needs.due(conn, store_id=store_id, now=now, within=timedelta(days=horizon_days))
    return [
        care.Need(
            customer_id=n.customer_id, product_id=n.product_id, due_at=n.due_at, confidence=n.confidence
        )
        for n in found
    ]


def care_sources(runtime: Runtime) -> CareSources:
    """What the recommender lends the scan: needs for `replenish`. `recommended_next` has no source
    yet: it needs every member's precomputed list read back from Redis in bulk."""
    return CareSources(needs=_needs)


async def scan_store(runtime: Runtime, *, store_id: str) -> care.ScanResult:
    """One scan of one store as of the runtime's clock, in a transaction of its own; its actions counted
    once it committed."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        result = await care.scan(conn, store_id=store_id, now=runtime.clock(), sources=care_sources(runtime))
    metrics.care_scanned(result)
    return result


async def run_care_scan(runtime: Runtime, job: Job) -> None:
    """Fan out to every store (scheduled run), or scan one store."""
    now = runtime.clock()
    if job.store_id is None:
        async with runtime.pool.acquire() as conn, conn.transaction():
            await jobs.enqueue_per_store(conn, kind=KIND, dedupe_prefix=f"{KIND}:{now:%Y-%m-%dT%H}:")
        return
    result = await scan_store(runtime, store_id=job.store_id)
    log.info(
        "care scan for store %s: %d actions, %d deferred emitted, %d attributed",
        job.store_id,
        sum(count.actions for count in result.actions),
        result.emitted_due,
        result.attributed,
    )
