"""The worker's job kinds and schedules. Handlers must be idempotent: a job can run twice."""

from __future__ import annotations

from plugin import care_jobs, ledger_jobs, tier_jobs
from plugin.worker import JobHandler, Schedule

JOB_HANDLERS: dict[str, JobHandler] = {
    tier_jobs.KIND: tier_jobs.evaluate_tiers,
    ledger_jobs.EXPIRE: ledger_jobs.expire_points,
    ledger_jobs.PURGE_IDEMPOTENCY_KEYS: ledger_jobs.purge_idempotency_keys,
    care_jobs.KIND: care_jobs.run_care_scan,
}
SCHEDULES: list[Schedule] = [tier_jobs.SCHEDULE, *ledger_jobs.SCHEDULES, care_jobs.SCHEDULE]
