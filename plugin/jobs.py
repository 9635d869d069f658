"""The worker's job kinds and schedules. Handlers must be idempotent: a job can run twice."""

from __future__ import annotations

from plugin import outbound
from plugin.worker import JobHandler, Pump, Schedule

JOB_HANDLERS: dict[str, JobHandler] = {}
SCHEDULES: list[Schedule] = []
PUMPS: list[Pump] = [outbound.deliver_outbox]
