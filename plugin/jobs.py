"""The worker's job kinds and schedules. Handlers must be idempotent: a job can run twice."""

from __future__ import annotations

from datetime import timedelta

from loyalty import idempotency
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import JobHandler, Schedule

IDEMPOTENCY_KEYS_KEPT = timedelta(days=7)
"""How long an Idempotency-Key is remembered; clients retry within minutes or hours, not days."""


async def purge_idempotency_keys(runtime: Runtime, job: Job) -> None:
    """`idempotency.purge`: forget Idempotency-Keys older than `IDEMPOTENCY_KEYS_KEPT`, in batches."""
    before = runtime.clock() - IDEMPOTENCY_KEYS_KEPT
    while True:
        async with runtime.pool.acquire() as conn:
            if not await idempotency.purge(conn, before=before, limit=10_000):
                break


JOB_HANDLERS: dict[str, JobHandler] = {
    "idempotency.purge": purge_idempotency_keys,
}
SCHEDULES: list[Schedule] = [
    Schedule(kind="idempotency.purge", every=timedelta(days=1)),
]
