"""Deliveries: fan-out from the outbox, claims under a lease, outcomes, attempts and replays.

Per-member ordering: an endpoint hears of one member (customer_id) in outbox event_id order. A
delivery may be claimed only when no earlier delivery of the same endpoint and member is still
undelivered (`pending` or `failed`); `delivered` and `dead` ones do not block, so a dead letter
releases the queue behind it instead of holding it forever.

`ready` makes that cheap: only queue heads are ready, so the claim scans heads (index
`deliveries_due`) rather than every blocked delivery behind an endpoint that is down. Fan-out sets
it for deliveries with no undelivered predecessor; completing a head (delivered or dead) readies the
next one. Fan-out holds FAN_OUT_LOCK exclusively and completions hold it shared, so a completion
never misses a successor being inserted. The claim still re-checks the rule itself, so a wrong hint
could only delay a delivery, never reorder one.

Times: `now` is None in production (the database's clock, which every worker shares, so leases
do not depend on hosts' clocks agreeing); tests pass a clock they can move.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection

# Any constant not used elsewhere in the database; this one spells "outbox".
FAN_OUT_LOCK = 0x6F7574626F78


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery claimed for one attempt, with what sending it needs."""

    delivery_id: int
    endpoint_id: str
    customer_id: str | None
    message_id: str
    event_type: str
    attempts: int
    series: int
    url: str
    secret: str
    payload: dict[str, Any]
    occurred_at: datetime


class DeliveryRow(msgspec.Struct, frozen=True, kw_only=True):
    delivery_id: int
    endpoint_id: str
    event_id: int
    message_id: str
    event_type: str
    customer_id: str | None
    status: str
    attempts: int
    series: int
    next_attempt_at: datetime
    locked_until: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    created_at: datetime


class AttemptRow(msgspec.Struct, frozen=True, kw_only=True):
    series: int
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


# One batch of outbox rows, in event_id order, to one delivery per subscribed enabled endpoint.
# The message id is drawn once per event, so all endpoints see the same `webhook-id` for it.
_FAN_OUT = """
WITH batch AS (
    SELECT event_id, store_id, customer_id, event_type,
        'msg_' || replace(gen_random_uuid()::text, '-', '') AS message_id
    FROM outbox WHERE fanned_out_at IS NULL
    ORDER BY event_id LIMIT $2
    FOR UPDATE
), marked AS (
    UPDATE outbox o SET fanned_out_at = coalesce($1::timestamptz, now())
    FROM batch b WHERE o.event_id = b.event_id
), targets AS (
    SELECT b.event_id, b.store_id, b.customer_id, b.event_type, b.message_id, e.endpoint_id,
        row_number() OVER (PARTITION BY e.endpoint_id, b.customer_id ORDER BY b.event_id) AS position
    FROM batch b
    JOIN webhook_endpoints e ON e.store_id = b.store_id AND e.enabled AND b.event_type = ANY (e.events)
), inserted AS (
    INSERT INTO deliveries (store_id, endpoint_id, event_id, message_id, event_type, customer_id,
        ready, next_attempt_at)
    SELECT t.store_id, t.endpoint_id, t.event_id, t.message_id, t.event_type, t.customer_id,
        t.customer_id IS NULL OR (t.position = 1 AND NOT EXISTS (
            SELECT 1 FROM deliveries d
            WHERE d.endpoint_id = t.endpoint_id AND d.customer_id = t.customer_id
              AND d.status IN ('pending', 'failed'))),
        coalesce($1::timestamptz, now())
    FROM targets t
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch) AS events, (SELECT count(*) FROM inserted) AS deliveries
"""

# Due queue heads, at most `per_endpoint` in flight per endpoint in this worker (counting what it
# already has, $5/$6) so one slow receiver cannot take every slot; then lock what is still free.
# Endpoints already at their share are left out before the LIMIT, or their backlog could fill the
# scanned window and starve the rest. FOR UPDATE re-checks status and lease on the newest row
# version, so two workers never hold one delivery.
_CLAIM = """
WITH busy AS (
    SELECT endpoint_id, n FROM unnest($5::text[], $6::int[]) AS busy (endpoint_id, n)
), due AS (
    SELECT d.delivery_id, d.endpoint_id, d.next_attempt_at
    FROM deliveries d
    JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id
    WHERE d.ready AND d.status IN ('pending', 'failed')
      AND d.next_attempt_at <= coalesce($2::timestamptz, now())
      AND (d.locked_until IS NULL OR d.locked_until < coalesce($2::timestamptz, now()))
      AND e.enabled
      AND d.endpoint_id NOT IN (SELECT endpoint_id FROM busy WHERE n >= $7)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries p
          WHERE p.endpoint_id = d.endpoint_id AND p.customer_id = d.customer_id
            AND p.status IN ('pending', 'failed') AND p.event_id < d.event_id)
    ORDER BY d.next_attempt_at, d.delivery_id
    LIMIT $4
), ranked AS (
    SELECT due.delivery_id, due.next_attempt_at,
        row_number() OVER (PARTITION BY due.endpoint_id ORDER BY due.next_attempt_at, due.delivery_id)
            + coalesce(busy.n, 0) AS slot
    FROM due LEFT JOIN busy USING (endpoint_id)
), picked AS (
    SELECT d.delivery_id FROM deliveries d JOIN ranked r USING (delivery_id)
    WHERE r.slot <= $7 AND d.status IN ('pending', 'failed')
      AND (d.locked_until IS NULL OR d.locked_until < coalesce($2::timestamptz, now()))
    ORDER BY r.next_attempt_at, d.delivery_id
    LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d SET locked_by = $1, attempts = d.attempts + 1,
    locked_until = coalesce($2::timestamptz, now()) + make_interval(secs => $8)
FROM picked, webhook_endpoints e, outbox o
WHERE d.delivery_id = picked.delivery_id AND e.endpoint_id = d.endpoint_id AND o.event_id = d.event_id
RETURNING d.delivery_id, d.endpoint_id, d.customer_id, d.message_id, d.event_type, d.attempts, d.series,
    e.url, e.secret, o.payload, o.created_at AS occurred_at
"""
# Each outcome is written with its attempt in one statement. Only the lease holder settles a
# delivery: a worker whose lease lapsed records its attempt and changes nothing else. The delivery
# may have gone with its endpoint meanwhile: then there is nothing to record against. (The lease
# holder's UPDATE locks the row, so it cannot vanish before the attempt row's foreign key is
# checked; for a worker whose lease lapsed it can, and that attempt is lost with the delivery.)
_ATTEMPT = """
attempt AS (
    INSERT INTO delivery_attempts
        (delivery_id, series, attempt, started_at, status_code, latency_ms, error, worker)
    SELECT $1, $3, $4, $5, $6, $7, $8, $2
    WHERE EXISTS (SELECT 1 FROM deliveries WHERE delivery_id = $1)
)"""
_RESCHEDULE = f"""
WITH {_ATTEMPT}
UPDATE deliveries SET status = 'failed', locked_by = NULL, locked_until = NULL,
    last_status_code = $6, last_error = $8, updated_at = now(),
    next_attempt_at = coalesce($9::timestamptz, now()) + make_interval(secs => $10)
WHERE delivery_id = $1 AND locked_by = $2
"""  # noqa: S608 - a constant
# Delivered or dead, and the next delivery of its endpoint and member becomes the queue head. The
# successor is looked up in this statement's snapshot, so the caller must hold lock_for_completion
# from an earlier statement (see the module docstring).
_SETTLE = f"""
WITH {_ATTEMPT}, settled AS (
    UPDATE deliveries SET status = $10::text, locked_by = NULL, locked_until = NULL,
        last_status_code = $6, last_error = $8, updated_at = now(),
        delivered_at = CASE WHEN $10::text = 'delivered' THEN coalesce($9::timestamptz, now()) END,
        dead_at = CASE WHEN $10::text = 'dead' THEN coalesce($9::timestamptz, now()) END
    WHERE delivery_id = $1 AND locked_by = $2
    RETURNING endpoint_id, customer_id
)
UPDATE deliveries SET ready = true WHERE delivery_id = (
    SELECT next.delivery_id FROM deliveries next
    JOIN settled ON next.endpoint_id = settled.endpoint_id AND next.customer_id = settled.customer_id
    WHERE next.status IN ('pending', 'failed') AND NOT next.ready
    ORDER BY next.event_id LIMIT 1
)
"""  # noqa: S608 - a constant
# Released on shutdown without being tried: the attempt does not count.
_RELEASE = """
UPDATE deliveries SET locked_by = NULL, locked_until = NULL, attempts = greatest(attempts - 1, 0)
WHERE delivery_id = ANY ($1::bigint[]) AND locked_by = $2
"""
_DELIVERY_COLUMNS = """delivery_id, endpoint_id, event_id, message_id, event_type, customer_id, status,
    attempts, series, next_attempt_at, locked_until, last_status_code, last_error, delivered_at, dead_at,
    created_at"""
_LIST = f"""
SELECT {_DELIVERY_COLUMNS} FROM deliveries
WHERE store_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR endpoint_id = $3)
  AND ($4::text IS NULL OR event_type = $4) AND ($5::bigint IS NULL OR delivery_id < $5)
ORDER BY delivery_id DESC
LIMIT $6
"""  # noqa: S608 - column list constant
_GET = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE store_id = $1 AND delivery_id = $2"  # noqa: S608
_ATTEMPTS = """
SELECT series, attempt, started_at, status_code, latency_ms, error FROM delivery_attempts
WHERE delivery_id = $1 ORDER BY attempt_id
"""
_PAYLOAD = "SELECT payload FROM outbox WHERE event_id = $1"
# A new series, due now, with the same message id. Ready at once: a replay is a deliberate re-send
# and goes before the member's later undelivered messages (the claim's rule holds those back).
_REPLAY = f"""
UPDATE deliveries SET status = 'pending', ready = true, attempts = 0, series = series + 1,
    next_attempt_at = coalesce($3::timestamptz, now()), locked_by = NULL, locked_until = NULL,
    delivered_at = NULL, dead_at = NULL, updated_at = now()
WHERE store_id = $1 AND delivery_id = $2
  AND (locked_until IS NULL OR locked_until < coalesce($3::timestamptz, now()))
RETURNING {_DELIVERY_COLUMNS}
"""  # noqa: S608


async def lock_for_fan_out(conn: Connection) -> None:
    """Take the fan-out lock (exclusive, until the transaction ends)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", FAN_OUT_LOCK)


async def lock_for_completion(conn: Connection) -> None:
    """Take the fan-out lock shared, until the transaction ends (see the module docstring)."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", FAN_OUT_LOCK)


async def notify(conn: Connection, *, channel: str) -> None:
    """NOTIFY `channel` when the transaction commits."""
    await conn.execute("SELECT pg_notify($1, '')", channel)


async def fan_out(conn: Connection, *, now: datetime | None, limit: int) -> tuple[int, int]:
    """Fan out up to `limit` outbox rows; (events, deliveries created). Hold lock_for_fan_out."""
    row = await conn.fetchrow(_FAN_OUT, now, limit)
    assert row is not None
    return int(row["events"]), int(row["deliveries"])


async def claim(
    conn: Connection,
    *,
    worker: str,
    now: datetime | None,
    limit: int,
    per_endpoint: int,
    busy: dict[str, int],
    lease_seconds: float,
) -> list[Claimed]:
    """Claim up to `limit` due deliveries under a lease; `busy` is this worker's in-flight count
    per endpoint."""
    rows = await conn.fetch(
        _CLAIM,
        worker,
        now,
        limit,
        limit * 4,
        list(busy),
        list(busy.values()),
        per_endpoint,
        lease_seconds,
    )
    return msgspec.convert(rows, list[Claimed], from_attributes=True)


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt as recorded, by the worker holding the delivery's lease."""

    delivery_id: int
    worker: str
    series: int
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None

    def args(self) -> tuple[object, ...]:
        return (
            self.delivery_id,
            self.worker,
            self.series,
            self.attempt,
            self.started_at,
            self.status_code,
            self.latency_ms,
            self.error,
        )


async def settle(conn: Connection, *, attempt: AttemptRecord, status: str, now: datetime | None) -> None:
    """Record the attempt and settle the delivery as `delivered` or `dead`, readying the next one
    of its member's queue. Hold lock_for_completion when the delivery has a customer_id."""
    await conn.execute(_SETTLE, *attempt.args(), now, status)


async def reschedule(
    conn: Connection, *, attempt: AttemptRecord, now: datetime | None, delay_seconds: float
) -> None:
    """Record the failed attempt and schedule the next one `delay_seconds` from now."""
    await conn.execute(_RESCHEDULE, *attempt.args(), now, delay_seconds)


async def release(conn: Connection, *, delivery_ids: list[int], worker: str) -> None:
    await conn.execute(_RELEASE, delivery_ids, worker)


async def page(
    conn: Connection,
    *,
    store_id: str,
    status: str | None,
    endpoint_id: str | None,
    event_type: str | None,
    before: int | None,
    limit: int,
) -> list[DeliveryRow]:
    """Deliveries newest first, before the delivery id `before`."""
    rows = await conn.fetch(_LIST, store_id, status, endpoint_id, event_type, before, limit)
    return msgspec.convert(rows, list[DeliveryRow], from_attributes=True)


async def get(conn: Connection, *, store_id: str, delivery_id: int) -> DeliveryRow | None:
    row = await conn.fetchrow(_GET, store_id, delivery_id)
    return None if row is None else msgspec.convert(row, DeliveryRow, from_attributes=True)


async def attempts(conn: Connection, *, delivery_id: int) -> list[AttemptRow]:
    rows = await conn.fetch(_ATTEMPTS, delivery_id)
    return msgspec.convert(rows, list[AttemptRow], from_attributes=True)


async def payload(conn: Connection, *, event_id: int) -> dict[str, Any]:
    value: dict[str, Any] = await conn.fetchval(_PAYLOAD, event_id)
    return value


async def replay(
    conn: Connection, *, store_id: str, delivery_id: int, now: datetime | None
) -> DeliveryRow | None:
    """Queue a delivery again as a new series; None when it is missing or in flight right now."""
    row = await conn.fetchrow(_REPLAY, store_id, delivery_id, now)
    return None if row is None else msgspec.convert(row, DeliveryRow, from_attributes=True)
