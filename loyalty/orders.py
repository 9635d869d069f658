"""Orders: credit once, reverse in proportion, park what arrives before its order.

An order is credited once however many events announce it (its id is unique per store). Refunds
and cancellations that arrive before their order are parked and applied right after it, so the
end state equals the in-order one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from loyalty import earning, ledger, members, programs
from loyalty.errors import InvalidInput
from loyalty.events import OrderCancelled, OrderPaid, OrderRefunded
from loyalty.program import Program
from loyalty.repository import Connection, outbox, products
from loyalty.repository import members as members_repo
from loyalty.repository import orders as repo
from loyalty.repository.ledger import Credit
from loyalty.repository.orders import NewLine, NewOrder, OrderRow
from loyalty.repository.stores import StoreRow

Outcome = Literal["applied", "duplicate", "parked"]


async def apply_paid(
    conn: Connection,
    *,
    store: StoreRow,
    program: Program,
    events: Sequence[OrderPaid],
    now: datetime,
    award: bool = True,
    orders_locked: bool = False,
) -> list[Outcome]:
    """Credit paid orders, each once, set-based: a handful of statements whatever their number.
    Their order ids must be distinct, and so must their customers (a member's second order is
    earned on the state the first left, so it goes in a later call). The outcomes are in the
    order of `events`. `orders_locked`: the caller took the orders' key locks already, in an
    earlier statement of this transaction (`programs.live_program(lock_orders=…)`)."""
    if len({event.order_id for event in events}) < len(events) or len(
        {event.customer.customer_id for event in events}
    ) < len(events):
        raise ValueError("paid orders applied together need distinct orders and customers")
    if not events:
        return []
    # The orders' keys before their members, as refunds and cancellations take them: a redelivered
    # order racing its own refund would otherwise deadlock. They also serialize with events parked
    # for these orders, so none is parked unseen while its order is inserted.
    if not orders_locked:
        await repo.lock_order_keys(
            conn, store_id=store.store_id, order_ids=[event.order_id for event in events]
        )
    members_by_id = await members.lock_from_orders(
        conn,
        store_id=store.store_id,
        customers=[event.customer for event in events],
        program=program,
        now=now,
    )
    categories = await _categories(conn, store_id=store.store_id, events=events)
    timezone = ZoneInfo(store.timezone)
    new_orders: list[NewOrder] = []
    credits: dict[str, Credit] = {}
    for event in events:
        member = members_by_id[event.customer.customer_id]
        facts = earning.OrderFacts(
            subtotal=event.subtotal,
            currency=event.currency,
            placed_at=event.placed_at,
            lines=[
                earning.Line(
                    line.line_id,
                    line.product_id,
                    line.category or categories.get(line.product_id or ""),
                    line.quantity,
                    line.unit_price,
                    line.discount,
                )
                for line in event.lines
            ],
            tier_code=member.tier_code,
            first_order=member.orders_count == 0,
            birthday=member.birthday,
            timezone=timezone,
        )
        earned = earning.order_points(program, facts)
        points = earned.points if award else 0
        micro = {line.line_id: line.micro_points for line in earned.lines} if award else {}
        new_orders.append(
            NewOrder(
                order_id=event.order_id,
                customer_id=member.customer_id,
                currency=event.currency,
                subtotal=event.subtotal,
                total=event.total,
                placed_at=event.placed_at,
                micro_points=earned.micro_points if award else 0,
                points=points,
                tier_code=member.tier_code,
                lines=[
                    NewLine(
                        line.line_id,
                        line.product_id,
                        line.sku,
                        line.title,
                        fact.category,
                        line.quantity,
                        line.unit_price,
                        line.discount,
                        micro.get(line.line_id, 0),
                    )
                    for line, fact in zip(event.lines, facts.lines, strict=True)
                ],
            )
        )
        if points > 0:
            credits[event.order_id] = ledger.credit(
                customer_id=member.customer_id,
                points=points,
                reason=f"order {event.order_id}",
                earned_at=event.placed_at,
                expiry_days=program.points.expiry_days,
                pending_days=program.points.pending_days,
                order_id=event.order_id,
                rules=earned.rules,
            )
    written = await repo.insert_paid(
        conn, store_id=store.store_id, program_version=program.version, awarded=award, orders=new_orders
    )
    await ledger.post_earns(
        conn,
        store_id=store.store_id,
        credits=[credit for order_id, credit in credits.items() if written[order_id].inserted],
        now=now,
        program_version=program.version,
        announce=True,
    )
    inserted = [event for event in events if written[event.order_id].inserted]
    await programs.reevaluate(
        conn,
        store_id=store.store_id,
        program=program,
        now=now,
        customer_ids=[event.customer.customer_id for event in inserted],
        reason="order",
    )
    for event in inserted:
        if written[event.order_id].parked:
            await _apply_parked(conn, store=store, program=program, order_id=event.order_id, now=now)
    return ["applied" if written[event.order_id].inserted else "duplicate" for event in events]


async def _apply_parked(
    conn: Connection, *, store: StoreRow, program: Program, order_id: str, now: datetime
) -> None:
    for parked in await repo.take_parked(conn, store_id=store.store_id, order_id=order_id):
        if parked.event_type == "order.cancelled":
            await apply_cancelled(
                conn,
                store=store,
                program=program,
                event=msgspec.convert(parked.payload, OrderCancelled),
                now=now,
                order_locked=True,
            )
        else:
            await apply_refunded(
                conn,
                store=store,
                program=program,
                event=msgspec.convert(parked.payload, OrderRefunded),
                now=now,
                order_locked=True,
            )


async def _categories(conn: Connection, *, store_id: str, events: Sequence[OrderPaid]) -> dict[str, str]:
    """Catalogue categories for lines that carry none (Shopify line items never do)."""
    missing = sorted(
        {
            line.product_id
            for event in events
            for line in event.lines
            if line.category is None and line.product_id
        }
    )
    return await products.categories(conn, store_id=store_id, product_ids=missing) if missing else {}


async def _points_changed(
    conn: Connection, store_id: str, customer_id: str, delta: int, balance: int, reason: str
) -> None:
    await outbox.emit(
        conn,
        store_id=store_id,
        customer_id=customer_id,
        event_type="points.changed",
        data={"delta": delta, "balance": balance, "reason": reason},
    )


async def _lock_known_order(
    conn: Connection,
    *,
    store_id: str,
    order_id: str,
    event_type: str,
    payload: msgspec.Struct,
    order_locked: bool,
) -> OrderRow | None:
    """The order, locked after its member; None (the event parked) when the order is not known yet."""
    if not order_locked:
        await repo.lock_order_keys(conn, store_id=store_id, order_ids=[order_id])
    customer_id = await repo.order_customer(conn, store_id=store_id, order_id=order_id)
    if customer_id is None:
        await repo.park(
            conn,
            store_id=store_id,
            order_id=order_id,
            event_type=event_type,
            payload=msgspec.to_builtins(payload),
        )
        return None
    # Lock order everywhere: the order's key, then the member, then the order row (apply_paid too);
    # ledger changes without an order lock only the member. So no two transactions wait in a cycle.
    await members_repo.lock(conn, store_id=store_id, customer_id=customer_id)
    return await repo.lock_order(conn, store_id=store_id, order_id=order_id)


async def _reverse(
    conn: Connection,
    *,
    store_id: str,
    order: OrderRow,
    points: int,
    reason: str,
    now: datetime,
    refund_id: str | None = None,
) -> None:
    if points <= 0:
        return
    balance = await ledger.debit(
        conn,
        store_id=store_id,
        customer_id=order.customer_id,
        kind="reverse",
        points=points,
        reason=reason,
        now=now,
        allow_debt=True,
        order_id=order.order_id,
        refund_id=refund_id,
    )
    await _points_changed(conn, store_id, order.customer_id, -points, balance, reason)


async def apply_cancelled(
    conn: Connection,
    *,
    store: StoreRow,
    program: Program,
    event: OrderCancelled,
    now: datetime,
    order_locked: bool = False,
) -> Outcome:
    order = await _lock_known_order(
        conn,
        store_id=store.store_id,
        order_id=event.order_id,
        event_type="order.cancelled",
        payload=event,
        order_locked=order_locked,
    )
    if order is None:
        return "parked"
    if order.status == "cancelled":
        return "duplicate"
    remaining = order.points - order.points_reversed
    await repo.update_order(
        conn, store_id=store.store_id, order_id=order.order_id, points_reversed=remaining, status="cancelled"
    )
    await members_repo.count_order(conn, store_id=store.store_id, customer_id=order.customer_id, delta=-1)
    await _reverse(
        conn,
        store_id=store.store_id,
        order=order,
        points=remaining,
        reason=f"order {order.order_id} cancelled",
        now=now,
    )
    await programs.reevaluate(
        conn,
        store_id=store.store_id,
        program=program,
        now=now,
        customer_ids=[order.customer_id],
        reason="cancellation",
    )
    return "applied"


async def apply_refunded(
    conn: Connection,
    *,
    store: StoreRow,
    program: Program,
    event: OrderRefunded,
    now: datetime,
    order_locked: bool = False,
) -> Outcome:
    order = await _lock_known_order(
        conn,
        store_id=store.store_id,
        order_id=event.order_id,
        event_type="order.refunded",
        payload=event,
        order_locked=order_locked,
    )
    if order is None:
        return "parked"
    if not await repo.insert_refund(
        conn, store_id=store.store_id, order_id=order.order_id, refund_id=event.refund_id, amount=event.amount
    ):
        return "duplicate"
    if order.status == "cancelled":
        return "applied"  # recorded; a cancelled order has nothing left to reverse
    if event.lines:
        quantities = {line.line_id: line.quantity for line in event.lines}
        known = await repo.refund_lines(
            conn, store_id=store.store_id, order_id=order.order_id, quantities=quantities
        )
        if unknown := set(quantities) - known:
            raise InvalidInput(f"order {order.order_id} has no lines {sorted(unknown)}", field="data.lines")
    lines = await repo.lines(conn, store_id=store.store_id, order_id=order.order_id)
    refunded = min(order.subtotal, order.refunded + event.amount)
    whole = refunded >= order.subtotal or (
        bool(lines) and all(line.refunded_qty == line.quantity for line in lines)
    )
    target = earning.reversal_target(
        points=order.points,
        micro_points=order.micro_points,
        lines=[earning.RefundedLine(line.micro_points, line.quantity, line.refunded_qty) for line in lines],
        subtotal=order.subtotal,
        refunded_amount=refunded,
        whole=whole,
    )
    delta = max(target - order.points_reversed, 0)
    await repo.update_order(
        conn,
        store_id=store.store_id,
        order_id=order.order_id,
        refunded=refunded - order.refunded,
        points_reversed=delta,
    )
    await repo.set_refund_points(
        conn, store_id=store.store_id, order_id=order.order_id, refund_id=event.refund_id, points=delta
    )
    await _reverse(
        conn,
        store_id=store.store_id,
        order=order,
        points=delta,
        reason=f"refund {event.refund_id} of order {order.order_id}",
        now=now,
        refund_id=event.refund_id,
    )
    await programs.reevaluate(
        conn,
        store_id=store.store_id,
        program=program,
        now=now,
        customer_ids=[order.customer_id],
        reason="refund",
    )
    return "applied"
