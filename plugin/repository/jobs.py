"""The job queue: enqueue, claim with SKIP LOCKED under a lease, finish, retry, release."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection


class Job(msgspec.Struct, frozen=True, kw_only=True):
    job_id: int
    kind: str
    store_id: str | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    job_id: int
    attempts: int
    finished_at: datetime | None
    failed_at: datetime | None
    last_error: str | None


_INSERT = """
INSERT INTO jobs (kind, store_id, payload, dedupe_key, run_at, max_attempts)
VALUES ($1, $2, $3, $4, coalesce($5, now()), $6)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING job_id
"""
# Claim due jobs whose lease is free or lapsed (a dead worker's jobs come back this way). A job
# whose lease lapsed on its last attempt took its worker down every time: dead-letter it instead.
_CLAIM = """
WITH lapsed_last_attempt AS (
    UPDATE jobs SET locked_by = NULL, locked_until = NULL, failed_at = now(),
        last_error = 'the lease lapsed on the last attempt: the worker stopped without an answer'
    WHERE finished_at IS NULL AND failed_at IS NULL
      AND locked_until < now() AND attempts >= max_attempts
)
UPDATE jobs SET locked_by = $1, locked_until = now() + make_interval(secs => $2), attempts = attempts + 1
WHERE job_id IN (
    SELECT job_id FROM jobs
    WHERE finished_at IS NULL AND failed_at IS NULL AND run_at <= now()
      AND (locked_until IS NULL OR locked_until < now()) AND attempts < max_attempts
    ORDER BY run_at, job_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING job_id, kind, store_id, payload, attempts, max_attempts
"""
_EXTEND = """
UPDATE jobs SET locked_until = now() + make_interval(secs => $3)
WHERE job_id = ANY($1::bigint[]) AND locked_by = $2 AND finished_at IS NULL AND failed_at IS NULL
"""
_FINISH = """
UPDATE jobs SET finished_at = now(), locked_by = NULL, locked_until = NULL, last_error = NULL
WHERE job_id = $1 AND locked_by = $2
"""
_FAIL = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, last_error = $3,
    failed_at = CASE WHEN attempts >= max_attempts THEN now() END,
    run_at = now() + make_interval(secs => $4)
WHERE job_id = $1 AND locked_by = $2
"""
# A job released on shutdown was not tried, so it does not use up an attempt.
_RELEASE = """
UPDATE jobs SET locked_by = NULL, locked_until = NULL, attempts = greatest(attempts - 1, 0)
WHERE job_id = ANY($1::bigint[]) AND locked_by = $2
"""
_STATE = "SELECT job_id, attempts, finished_at, failed_at, last_error FROM jobs WHERE job_id = $1"


async def enqueue(
    conn: Connection,
    *,
    kind: str,
    store_id: str | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int = 5,
) -> int | None:
    """Queue a job; None when a job with the same dedupe key already exists."""
    job_id: int | None = await conn.fetchval(
        _INSERT, kind, store_id, payload or {}, dedupe_key, run_at, max_attempts
    )
    return job_id


async def claim(conn: Connection, *, worker: str, lease_seconds: float, limit: int) -> list[Job]:
    rows = await conn.fetch(_CLAIM, worker, lease_seconds, limit)
    return msgspec.convert(rows, list[Job], from_attributes=True)


async def extend(conn: Connection, *, job_ids: list[int], worker: str, lease_seconds: float) -> None:
    """Renew the worker's lease on jobs it is still running."""
    await conn.execute(_EXTEND, job_ids, worker, lease_seconds)


async def finish(conn: Connection, *, job_id: int, worker: str) -> None:
    await conn.execute(_FINISH, job_id, worker)


async def fail(conn: Connection, *, job_id: int, worker: str, error: str, retry_in: float) -> None:
    await conn.execute(_FAIL, job_id, worker, error, retry_in)


async def release(conn: Connection, *, job_ids: list[int], worker: str) -> None:
    await conn.execute(_RELEASE, job_ids, worker)


async def state(conn: Connection, *, job_id: int) -> JobState | None:
    row = await conn.fetchrow(_STATE, job_id)
    return None if row is None else msgspec.convert(row, JobState, from_attributes=True)


_INSERT_PER_STORE = """
INSERT INTO jobs (kind, store_id, dedupe_key)
SELECT $1, store_id, $2 || store_id FROM stores
ON CONFLICT (dedupe_key) DO NOTHING
"""


async def enqueue_per_store(conn: Connection, *, kind: str, dedupe_prefix: str) -> None:
    """Queue one job of `kind` per store, in one statement; `dedupe_prefix` + store id dedupes it."""
    await conn.execute(_INSERT_PER_STORE, kind, dedupe_prefix)
