"""Ledger housekeeping: points expiry (hourly) and forgetting old Idempotency-Keys (daily).

Both are idempotent: a lot expires once (its remaining points go to zero in the same
transaction), and purging an already purged key deletes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from loyalty import idempotency, ledger
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import Schedule

EXPIRE = "points.expire"
PURGE_IDEMPOTENCY_KEYS = "idempotency.purge"
SCHEDULES = [
    Schedule(kind=EXPIRE, every=timedelta(hours=1)),
    Schedule(kind=PURGE_IDEMPOTENCY_KEYS, every=timedelta(days=1)),
]

EXPIRY_BATCH_MEMBERS = 500
"""Members whose due lots expire in one transaction: bounds how long their row locks are held."""
IDEMPOTENCY_KEYS_KEPT = timedelta(days=7)
"""How long an Idempotency-Key is remembered; clients retry within minutes or hours, not days."""


async def expire_points(runtime: Runtime, job: Job) -> None:
    """`points.expire`: expire every lot due by now, store by store, a batch per transaction.

    With a `store_id` on the job, only that store. A batch that finds nothing ends the store's
    loop; whatever became due meanwhile waits for the next run (hourly).
    """
    now = runtime.clock()
    if job.store_id is not None:
        store_ids = [job.store_id]
    else:
        async with runtime.pool.acquire() as conn:
            store_ids = await ledger.stores_with_due_lots(conn, now=now)
    for store_id in store_ids:
        while True:
            async with runtime.pool.acquire() as conn, conn.transaction():
                expired = await ledger.expire_due(
                    conn, store_id=store_id, now=now, members=EXPIRY_BATCH_MEMBERS
                )
            if not expired:
                break


async def purge_idempotency_keys(runtime: Runtime, job: Job) -> None:
    """`idempotency.purge`: forget Idempotency-Keys older than `IDEMPOTENCY_KEYS_KEPT`, in batches."""
    before = runtime.clock() - IDEMPOTENCY_KEYS_KEPT
    while True:
        async with runtime.pool.acquire() as conn:
            if not await idempotency.purge(conn, before=before, limit=10_000):
                break
