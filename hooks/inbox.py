"""Receive an inbound event exactly once: the inbox row and the event's effect share a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, NamedTuple

from hooks.inbound import Inbound
from hooks.repository import inbox as repo
from loyalty import ingest
from loyalty.events import Event, OrderPaid
from loyalty.repository import Connection
from loyalty.repository.stores import StoreRow

Status = Literal["applied", "duplicate", "parked", "ignored"]


async def receive(
    conn: Connection,
    *,
    store: StoreRow,
    source: str,
    event_id: str,
    event_type: str,
    event: Event,
    now: datetime,
    delivery_id: str | None = None,
) -> Status:
    """Record and apply an event; a second delivery of the same id is a `duplicate` and changes nothing."""
    if isinstance(event, OrderPaid):
        delivery = PaidDelivery(source, event_id, event_type, event, delivery_id)
        (status,) = await receive_paid(conn, store=store, deliveries=[delivery], now=now)
        return status
    if not await repo.insert(
        conn,
        store_id=store.store_id,
        source=source,
        event_id=event_id,
        event_type=event_type,
        delivery_id=delivery_id,
    ):
        return "duplicate"
    outcome = await ingest.apply(conn, store=store, event=event, now=now)
    if outcome != "applied":
        await repo.set_outcome(
            conn, store_id=store.store_id, source=source, event_id=event_id, outcome=outcome
        )
    return outcome


class PaidDelivery(NamedTuple):
    """A paid order as one delivery announced it."""

    source: str
    event_id: str
    event_type: str
    event: OrderPaid
    delivery_id: str | None = None


async def receive_paid(
    conn: Connection, *, store: StoreRow, deliveries: Sequence[PaidDelivery], now: datetime
) -> list[Status]:
    """`receive` for several paid orders at once, set-based: their inbox rows in one statement, their
    effects in a few (`ingest.apply_paid`). Keys, orders and customers must be distinct. Statuses
    in the order of `deliveries`."""
    keys = [repo.InboxKey(delivery.source, delivery.event_id) for delivery in deliveries]
    new = await repo.insert_many(
        conn,
        store_id=store.store_id,
        events=[
            (key, delivery.event_type, delivery.delivery_id)
            for key, delivery in zip(keys, deliveries, strict=True)
        ],
    )
    fresh = [(key, delivery) for key, delivery in zip(keys, deliveries, strict=True) if key in new]
    outcomes = await ingest.apply_paid(
        conn, store=store, events=[delivery.event for _, delivery in fresh], now=now
    )
    status: dict[repo.InboxKey, Status] = {}
    for (key, _), outcome in zip(fresh, outcomes, strict=True):
        status[key] = outcome
        if outcome != "applied":
            await repo.set_outcome(
                conn, store_id=store.store_id, source=key.source, event_id=key.event_id, outcome=outcome
            )
    return [status.get(key, "duplicate") for key in keys]


async def receive_all(
    conn: Connection,
    *,
    store: StoreRow,
    source: str,
    events: Sequence[Inbound],
    now: datetime,
    delivery_id: str | None = None,
) -> Status:
    """Receive each event under its own key, in order; the answer is the strongest outcome among them.

    A snapshot platform (WooCommerce) sends one payload that can stand for several events: an
    order seen for the first time already refunded is paid, then refunded. Whatever was received
    before is a duplicate, so only the difference takes effect.
    """
    outcomes = set()
    for inbound in events:  # in order, one after the other: a refund needs its order first
        outcomes.add(
            await receive(
                conn,
                store=store,
                source=source,
                event_id=inbound.key,
                event_type=inbound.event_type,
                event=inbound.event,
                now=now,
                delivery_id=delivery_id,
            )
        )
    return next((status for status in ("applied", "parked", "duplicate") if status in outcomes), "ignored")


async def ignore(
    conn: Connection,
    *,
    store: StoreRow,
    source: str,
    event_id: str,
    event_type: str,
    delivery_id: str | None = None,
) -> Status:
    """Record a delivery that is understood and deliberately has no effect, so it can be traced."""
    await repo.insert(
        conn,
        store_id=store.store_id,
        source=source,
        event_id=event_id,
        event_type=event_type,
        outcome="ignored",
        delivery_id=delivery_id,
    )
    return "ignored"
