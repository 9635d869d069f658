"""Apply one canonical event inside the caller's transaction (the one holding its inbox row)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from loyalty import members, orders, programs
from loyalty.events import Customer, Event, OrderCancelled, OrderPaid, OrderRefunded, ProductUpserted
from loyalty.orders import Outcome
from loyalty.repository import Connection
from loyalty.repository import products as products_repo
from loyalty.repository.stores import StoreRow


async def apply(
    conn: Connection, *, store: StoreRow, event: Event, now: datetime, award: bool = True
) -> Outcome:
    """The event's whole effect; `duplicate` when it changes nothing that is not already so."""
    if isinstance(event, OrderPaid):
        (outcome,) = await apply_paid(conn, store=store, events=[event], now=now, award=award)
        return outcome
    if isinstance(event, OrderRefunded | OrderCancelled):
        # An order event's first lock is its order's key (see loyalty.orders): taken with the
        # program read, so its own statement precedes every later one, as the protocol needs.
        program = await programs.live_program(conn, store_id=store.store_id, lock_orders=[event.order_id])
        if isinstance(event, OrderRefunded):
            return await orders.apply_refunded(
                conn, store=store, program=program, event=event, now=now, order_locked=True
            )
        return await orders.apply_cancelled(
            conn, store=store, program=program, event=event, now=now, order_locked=True
        )
    program = await programs.live_program(conn, store_id=store.store_id)
    if isinstance(event, Customer):
        applied = await members.upsert_customer(
            conn, store_id=store.store_id, customer=event, program=program, now=now
        )
        return "applied" if applied else "duplicate"
    if isinstance(event, ProductUpserted):
        applied = await products_repo.upsert(
            conn,
            store_id=store.store_id,
            product_id=event.product_id,
            title=event.title,
            category=event.category,
            brand=event.brand,
            price=event.price,
            tags=list(event.tags),
            consumable_days=event.consumable_days,
            active=event.active,
            source_updated_at=event.updated_at,
        )
        return "applied" if applied else "duplicate"
    raise TypeError(f"no handler for {type(event).__name__}")


async def apply_paid(
    conn: Connection, *, store: StoreRow, events: Sequence[OrderPaid], now: datetime, award: bool = True
) -> list[Outcome]:
    """Paid orders' whole effect, set-based (distinct orders and customers; see `orders.apply_paid`),
    their outcomes in order."""
    program = await programs.live_program(
        conn, store_id=store.store_id, lock_orders=[event.order_id for event in events]
    )
    return await orders.apply_paid(
        conn, store=store, program=program, events=events, now=now, award=award, orders_locked=True
    )
