"""The deliveries record: what was sent where, every attempt, and replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from hooks.repository import deliveries as repo
from hooks.repository import endpoints as endpoints_repo
from hooks.repository.deliveries import AttemptRow, DeliveryRow
from loyalty.errors import Conflict, NotFound
from loyalty.repository import Connection

DeliveryStatus = Literal["pending", "failed", "delivered", "dead"]
"""`pending`: not tried yet, or replayed; `failed`: tried, a retry is scheduled; `delivered`: a 2xx
came back; `dead`: the last attempt failed (or the receiver answered 410) — replay to try again."""

ID_PREFIX = "dlv_"


class DeliveryAttempt(msgspec.Struct, kw_only=True):
    """One attempt: the receiver's status code (null when none came), its latency and the error."""

    series: int
    """1 for the original attempts, one more for each replay."""
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class Delivery(msgspec.Struct, kw_only=True):
    """One event's delivery to one endpoint."""

    delivery_id: str
    endpoint_id: str
    message_id: str
    """The `webhook-id` header: the same on every attempt and replay, for receivers to dedupe on."""
    event_type: str
    customer_id: str | None
    status: DeliveryStatus
    attempt_count: int
    """Attempts in the current series."""
    next_attempt_at: datetime | None
    """When it will be tried next; null once delivered or dead."""
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class DeliveryDetail(Delivery, kw_only=True):
    """A delivery with its payload and every attempt, oldest first."""

    data: dict[str, Any]
    attempts: list[DeliveryAttempt]


class DeliveryPage(msgspec.Struct, kw_only=True):
    """Deliveries newest first; pass `next_cursor` as `cursor` for the next page."""

    items: list[Delivery]
    next_cursor: str | None


def parse_id(delivery_id: str) -> int | None:
    """The number inside a `dlv_…` id; None when it is not one."""
    digits = delivery_id.removeprefix(ID_PREFIX)
    return (
        int(digits) if delivery_id.startswith(ID_PREFIX) and digits.isdigit() and len(digits) < 19 else None
    )


def _view(row: DeliveryRow) -> Delivery:
    return Delivery(
        delivery_id=f"{ID_PREFIX}{row.delivery_id}",
        endpoint_id=row.endpoint_id,
        message_id=row.message_id,
        event_type=row.event_type,
        customer_id=row.customer_id,
        status=row.status,  # type: ignore[arg-type]  # the table's CHECK keeps it to DeliveryStatus
        attempt_count=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status in ("pending", "failed") else None,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        dead_at=row.dead_at,
    )


def _attempt(row: AttemptRow) -> DeliveryAttempt:
    return DeliveryAttempt(**msgspec.structs.asdict(row))


async def page(
    conn: Connection,
    *,
    store_id: str,
    status: DeliveryStatus | None,
    endpoint_id: str | None,
    event_type: str | None,
    before: int | None,
    limit: int,
) -> tuple[list[Delivery], int | None]:
    """A page of deliveries and the id to continue before (None: no more)."""
    rows = await repo.page(
        conn,
        store_id=store_id,
        status=status,
        endpoint_id=endpoint_id,
        event_type=event_type,
        before=before,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return [_view(row) for row in rows], rows[-1].delivery_id if more else None


async def _row(conn: Connection, *, store_id: str, delivery_id: str) -> DeliveryRow:
    number = parse_id(delivery_id)
    row = None if number is None else await repo.get(conn, store_id=store_id, delivery_id=number)
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return row


async def get(conn: Connection, *, store_id: str, delivery_id: str) -> DeliveryDetail:
    row = await _row(conn, store_id=store_id, delivery_id=delivery_id)
    attempts = await repo.attempts(conn, delivery_id=row.delivery_id)
    return DeliveryDetail(
        **msgspec.structs.asdict(_view(row)),
        data=await repo.payload(conn, event_id=row.event_id),
        attempts=[_attempt(attempt) for attempt in attempts],
    )


async def replay(
    conn: Connection, *, store_id: str, delivery_id: str, now: datetime | None = None
) -> Delivery:
    """Queue a delivery again, due now, as a new series of attempts with the same message id."""
    row = await _row(conn, store_id=store_id, delivery_id=delivery_id)
    endpoint = await endpoints_repo.get(conn, store_id=store_id, endpoint_id=row.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise Conflict(f"endpoint {row.endpoint_id} is disabled: enable it before replaying")
    replayed = await repo.replay(conn, store_id=store_id, delivery_id=row.delivery_id, now=now)
    if replayed is None:
        raise Conflict(f"delivery {delivery_id} is being attempted right now; replay it once that ends")
    return _view(replayed)
