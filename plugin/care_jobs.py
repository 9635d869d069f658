"""The hourly care scan: scheduled once, fanned out one job per store (like the tier pass).

Hourly, although most triggers are daily: it is what moves deferred actions out of the quiet
hours (an action decided at night is emitted by the first scan after the quiet hours end) and
what keeps `tier_welcome` close to the upgrade. Re-running a scan is harmless: every action is
unique per member, trigger and period, and scans of one store queue on a lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from redis.asyncio import Redis

from loyalty import care
from loyalty.care import CareSources, RecommendationsSource
from loyalty.repository import Connection
from plugin import metrics
from plugin.repository import jobs
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import Schedule
from recommender import needs as recommender_needs
from recommender import serving

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


REASONS = {
    "bought_before": "bought before",
    "due_again": "due again",
    "similar_members": "members with similar taste bought",
    "popular_now": "popular right now",
    "popular_in_favourite_categories": "popular in your favourite categories",
    "popular": "popular",
}
"""The recommender's reason codes as the suggestion's `reason` says them."""


def recommendations_from(redis: Redis) -> RecommendationsSource:
    """`recommended_next`'s source: each reachable member's precomputed `discover` list (products new
    to them), read from Redis in bulk."""

    async def recommendations(
        store_id: str, customer_ids: Sequence[str], products: int
    ) -> care.Recommendations:
        picks = await serving.read_many(
            redis, store_id=store_id, customer_ids=customer_ids, list_name="discover", limit=products
        )
        return care.Recommendations(
            customer_ids=picks.customer_ids,
            product_ids=picks.product_ids,
            reasons=[REASONS.get(reason, reason) for reason in picks.reasons],
        )

    return recommendations


def care_sources(runtime: Runtime) -> CareSources:
    """What the recommender lends the scan: needs for `replenish`, lists for `recommended_next`."""
    return CareSources(needs=_needs, recommendations=recommendations_from(runtime.redis))


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
