"""The worker's job kinds and schedules. Handlers must be idempotent: a job can run twice."""

from __future__ import annotations

from plugin import care_jobs, case_jobs, ledger_jobs, outbound, profile_cache, recommender_jobs, tier_jobs
from plugin.worker import JobHandler, Pump, Schedule

JOB_HANDLERS: dict[str, JobHandler] = {
    tier_jobs.KIND: tier_jobs.evaluate_tiers,
    ledger_jobs.EXPIRE: ledger_jobs.expire_points,
    ledger_jobs.PURGE_IDEMPOTENCY_KEYS: ledger_jobs.purge_idempotency_keys,
    case_jobs.BREACHES: case_jobs.flag_breaches,
    care_jobs.KIND: care_jobs.run_care_scan,
    recommender_jobs.REFRESH: recommender_jobs.refresh,
    profile_cache.PURGE: profile_cache.purge_job,
}
SCHEDULES: list[Schedule] = [
    tier_jobs.SCHEDULE,
    *ledger_jobs.SCHEDULES,
    *case_jobs.SCHEDULES,
    care_jobs.SCHEDULE,
    recommender_jobs.SCHEDULE,
]
PUMPS: list[Pump] = [outbound.deliver_outbox]
