"""The worker's job kinds and schedules. Handlers must be idempotent: a job can run twice."""

from __future__ import annotations

from plugin import tier_jobs
from plugin.worker import JobHandler, Schedule

JOB_HANDLERS: dict[str, JobHandler] = {tier_jobs.KIND: tier_jobs.evaluate_tiers}
SCHEDULES: list[Schedule] = [tier_jobs.SCHEDULE]
