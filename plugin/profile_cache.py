"""The profile cache: each member's composed view in Redis, versioned by PostgreSQL.

Why this shape. Every transaction that touches a member bumps `members.version` — by triggers
(migration 0010), so no write path can forget it: webhooks, redemptions, preferences, cases, the
tier and expiry jobs, and code not yet written. A read asks PostgreSQL for the version (one
primary-key lookup, no transaction, batched with concurrent reads: plugin/member_versions.py)
*concurrently* with the Redis GET of the cached entry, and serves
the entry only if it was built at that version (and that program version) and the clock has not
passed the entry's `valid_until` (the next moment the view changes by time alone: pending points
becoming available, expiry windows, a promise falling due). So a read costs max(PG, Redis), not
their sum, and is never stale:

- a write that returned has committed its version; any later read sees that version or a newer one;
- nothing has to happen after commit, so a process dying between commit and a cache update cannot
  leave a stale entry behind (the weakness of a Redis version key INCR'd after commit);
- no TTL carries correctness: the entry's expiry only frees memory of members nobody reads.

A miss rebuilds the view in one REPEATABLE READ transaction, so the versions stored with it are the
versions it reflects, and writes the entry (a racing older rebuild can overwrite a newer one; the
next read then simply rebuilds — a cost, never a stale answer). If Redis is down or slow, reads are
served from PostgreSQL (through `runtime.redis_breaker`: one short wait, then Redis is skipped for a
moment). Erasure deletes the entry outright.
"""

from __future__ import annotations

import hashlib
import logging

import msgspec

from loyalty import members, programs
from loyalty.errors import NotFound
from loyalty.repository import Connection
from loyalty.repository.members import VersionRow
from plugin import metrics
from plugin.repository import jobs
from plugin.repository.jobs import Job
from plugin.runtime import Runtime

log = logging.getLogger(__name__)

KEEP_SECONDS = 24 * 3600
"""How long an unread entry stays in Redis: memory hygiene only."""


class Entry(msgspec.Struct, array_like=True, frozen=True):
    """A cached profile: the versions it was built at, until when it holds, its ETag and JSON body."""

    version: int
    program_version: int
    valid_until: float | None
    etag: str
    body: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def cache_key(store_id: str, customer_id: str) -> str:
    return f"patron:profile:{store_id}:{customer_id}"


async def _cached(runtime: Runtime, key: str) -> Entry | None:
    raw = await runtime.redis_breaker.call(lambda: runtime.redis.get(key), default=None)
    return None if raw is None else _decoder.decode(raw if isinstance(raw, bytes) else raw.encode())


def fresh(entry: Entry | None, versions: VersionRow, now_ts: float) -> bool:
    """Whether a cached entry shows the member exactly as of these versions at this time."""
    return (
        entry is not None
        and entry.version == versions.version
        and entry.program_version == versions.program_version
        and (entry.valid_until is None or now_ts < entry.valid_until)
    )


async def profile(runtime: Runtime, *, store_id: str, customer_id: str) -> Entry:
    """The member's profile (ETag and JSON body), from the cache when it is current; NotFound if
    the member is unknown or erased."""
    # The lookup goes out on the loop's next turn, while this awaits Redis: max(PG, Redis).
    pending_versions = runtime.member_versions.get(store_id, customer_id)
    entry = await _cached(runtime, cache_key(store_id, customer_id))
    versions = await pending_versions
    if versions is None:
        raise NotFound(f"no member {customer_id}")
    now = runtime.clock()
    if entry is None:
        metrics.profile_read("miss")
    elif fresh(entry, versions, now.timestamp()):
        metrics.profile_read("hit")
        return entry
    else:
        metrics.profile_read("stale")
    return await rebuild(runtime, store_id=store_id, customer_id=customer_id)


async def rebuild(runtime: Runtime, *, store_id: str, customer_id: str) -> Entry:
    """Compose the view from PostgreSQL and cache it."""
    now = runtime.clock()
    async with runtime.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        program = await programs.live_program(conn, store_id=store_id)
        snap = await members.snapshot(
            conn, store_id=store_id, customer_id=customer_id, program=program, now=now
        )
    body = msgspec.json.encode(snap.view)
    entry = Entry(
        version=snap.version,
        program_version=snap.program_version,
        valid_until=None if snap.valid_until is None else snap.valid_until.timestamp(),
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        body=body,
    )
    key = cache_key(store_id, customer_id)
    await runtime.redis_breaker.call(
        lambda: runtime.redis.set(key, _encoder.encode(entry), ex=KEEP_SECONDS), default=None
    )
    return entry


PURGE = "profile.purge"
"""The job that drops an erased member's cached profile, queued in the erasure's transaction."""
PURGE_ATTEMPTS = 20
"""With the worker's backoff (2 s doubling, capped at an hour), retries span a Redis outage of hours."""


async def forget(conn: Connection, *, store_id: str, customer_id: str) -> None:
    """Erasure: personal data must not linger in Redis. Call inside the erasure's transaction: a
    job is queued with it, then `purge_now` after commit drops the entry at once when Redis is
    up. The entry can never be served again either way (the member is unknown); the job is what
    makes sure it is gone even if Redis was down or this process died after the commit."""
    await jobs.enqueue(
        conn,
        kind=PURGE,
        store_id=store_id,
        payload={"customer_id": customer_id},
        max_attempts=PURGE_ATTEMPTS,
    )


async def purge_now(runtime: Runtime, *, store_id: str, customer_id: str) -> None:
    """Drop the member's cached profile if Redis answers (the queued job retries if it does not)."""
    key = cache_key(store_id, customer_id)
    await runtime.redis_breaker.call(lambda: runtime.redis.delete(key), default=None)


async def purge_job(runtime: Runtime, job: Job) -> None:
    """`profile.purge`: drop an erased member's cached profile; raises (to be retried) while Redis
    is unavailable."""
    assert job.store_id is not None
    await runtime.redis.delete(cache_key(job.store_id, job.payload["customer_id"]))
