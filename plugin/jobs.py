"""The worker's job kinds and schedules. Handlers must be idempotent: a job can run twice."""

from __future__ import annotations

from plugin.worker import JobHandler, Schedule

JOB_HANDLERS: dict[str, JobHandler] = {}
SCHEDULES: list[Schedule] = []
