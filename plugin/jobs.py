"""The worker's job kinds and schedules. Handlers must be idempotent: a job can run twice."""

from __future__ import annotations

from plugin import recommender_jobs
from plugin.worker import JobHandler, Schedule

JOB_HANDLERS: dict[str, JobHandler] = {recommender_jobs.REFRESH: recommender_jobs.refresh}
SCHEDULES: list[Schedule] = [recommender_jobs.SCHEDULE]
