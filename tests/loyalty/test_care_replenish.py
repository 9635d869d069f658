"""`replenish` fed by the recommender's repurchase rhythms, through the worker's care sources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from loyalty import care
from loyalty.stores import StoreCreated
from plugin.care_jobs import care_sources
from plugin.runtime import Runtime
from tests.events import make_customer, make_line, make_order, send
from tests.loyalty.care_rows import actions, care_program

START = datetime(2026, 9, 1, 10, tzinfo=UTC)


async def test_a_product_bought_every_ten_days_is_suggested_when_due(
    client: httpx.AsyncClient, store: StoreCreated, pool: asyncpg.Pool, runtime: Runtime
) -> None:
    customer = make_customer(marketing_consent=True)
    for n in range(5):
        placed = (START + timedelta(days=10 * n)).isoformat()
        order = make_order(customer=customer, placed_at=placed, lines=[make_line(product_id="beans")])
        assert (await send(client, store, "order.paid", order)).json() == {"status": "applied"}
    program = care_program({"kind": "replenish", "days_before": 3})
    sources = care_sources(runtime)
    too_early = START + timedelta(days=42)  # last bought on day 40, due on day 50
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=store.store_id, now=too_early, program=program, sources=sources)
    async with pool.acquire() as conn:
        assert await actions(conn, store.store_id) == []
    due_soon = START + timedelta(days=48)
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(
            conn, store_id=store.store_id, now=due_soon, program=program, sources=care_sources(runtime)
        )
    async with pool.acquire() as conn:
        found = await actions(conn, store.store_id)
    assert [(cid, trigger, kind) for cid, trigger, kind, _ in found] == [
        (customer["customer_id"], "replenish", "suggestion")
    ]
