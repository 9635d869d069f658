"""Deliveries racing each other on one order: redeliveries, refunds and cancellation at once."""

from __future__ import annotations

import asyncio

import httpx

from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.events import make_line, make_order, send
from tests.members import check_invariants

Client = httpx.AsyncClient


async def test_redelivered_order_racing_its_refunds_and_cancellation(
    client: Client, store: StoreCreated, runtime: Runtime
) -> None:
    # A redelivered order.paid used to lock the member before the order's key while a refund or
    # cancellation of the same order locked them the other way round: PostgreSQL saw a deadlock
    # and one delivery failed with a 500.
    for cancel in (False, True):
        order = make_order(lines=[make_line(unit_price=10000)])
        await send(client, store, "order.paid", order)
        order_id = order["order_id"]
        deliveries = [send(client, store, "order.paid", order) for _ in range(6)]
        deliveries += [
            send(
                client, store, "order.refunded", {"order_id": order_id, "refund_id": f"r{i}", "amount": 1000}
            )
            for i in range(6)
        ]
        if cancel:
            deliveries.append(send(client, store, "order.cancelled", {"order_id": order_id}))
        responses = await asyncio.gather(*deliveries)
        assert [response.status_code for response in responses] == [200] * len(deliveries)
        async with runtime.pool.acquire() as conn:
            await check_invariants(conn, store.store_id)
            net = await conn.fetchval(
                "SELECT sum(points) FROM ledger_entries WHERE store_id = $1 AND order_id = $2",
                store.store_id,
                order_id,
            )
        assert net == (0 if cancel else 100 - 60)
