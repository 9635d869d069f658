"""Orders through the standard webhook: earning, refunds in proportion, cancellations, parking."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from loyalty import ledger
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import make_store
from tests.events import make_customer, make_line, make_order, send

Client = httpx.AsyncClient


async def member_state(runtime: Runtime, store: StoreCreated, customer_id: str) -> dict[str, Any]:
    """Balance, the ledger's sum and the open lots, which must always agree."""
    async with runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            """
            SELECT m.balance,
                   (SELECT coalesce(sum(points), 0) FROM ledger_entries e
                     WHERE e.store_id = m.store_id AND e.customer_id = m.customer_id) AS ledger_sum,
                   (SELECT coalesce(sum(remaining), 0) FROM point_lots l
                     WHERE l.store_id = m.store_id AND l.customer_id = m.customer_id) AS open_points,
                   m.orders_count
            FROM members m WHERE m.store_id = $1 AND m.customer_id = $2
            """,
            store.store_id,
            customer_id,
        )
    assert row is not None
    state = dict(row)
    assert state["balance"] == state["ledger_sum"]
    assert state["open_points"] == max(state["balance"], 0)
    return state


async def paid(client: Client, store: StoreCreated, order: dict[str, Any]) -> None:
    response = await send(client, store, "order.paid", order)
    assert response.json() == {"status": "applied"}, response.text


class TestEarning:
    async def test_points_follow_the_formula(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        order = make_order(lines=[make_line(unit_price=1999, quantity=3, discount=500)])  # 54.97 EUR
        await paid(client, store, order)
        state = await member_state(runtime, store, order["customer"]["customer_id"])
        assert state["balance"] == 54
        assert state["orders_count"] == 1

    async def test_order_level_discount_is_shared_across_lines(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        lines = [make_line(unit_price=3000), make_line(unit_price=1000)]
        order = make_order(lines=lines, subtotal=2000)  # half off the whole order
        await paid(client, store, order)
        assert (await member_state(runtime, store, order["customer"]["customer_id"]))["balance"] == 20


class TestRefunds:
    async def test_partial_refunds_adding_up_reverse_exactly(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        line = make_line(unit_price=333, quantity=3)  # 9.99 EUR: 9 points at 1 per EUR
        order = make_order(lines=[line])
        await paid(client, store, order)
        cid = order["customer"]["customer_id"]
        for index in range(3):
            refund = {
                "order_id": order["order_id"],
                "refund_id": f"r{index}",
                "amount": 333,
                "lines": [{"line_id": line["line_id"], "quantity": 1}],
            }
            assert (await send(client, store, "order.refunded", refund)).json() == {"status": "applied"}
        state = await member_state(runtime, store, cid)
        assert state["balance"] == 0

    async def test_amount_refund_reverses_in_proportion(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        order = make_order(lines=[make_line(unit_price=10000)])
        await paid(client, store, order)
        refund = {"order_id": order["order_id"], "refund_id": "r1", "amount": 2500, "lines": []}
        await send(client, store, "order.refunded", refund)
        assert (await member_state(runtime, store, order["customer"]["customer_id"]))["balance"] == 75
        assert (await send(client, store, "order.refunded", refund)).json() == {"status": "duplicate"}
        assert (await member_state(runtime, store, order["customer"]["customer_id"]))["balance"] == 75

    async def test_refund_of_unknown_line_is_422_and_writes_nothing(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        order = make_order()
        await paid(client, store, order)
        refund = {
            "order_id": order["order_id"],
            "refund_id": "r1",
            "amount": 100,
            "lines": [{"line_id": "nope", "quantity": 1}],
        }
        response = await send(client, store, "order.refunded", refund)
        assert response.status_code == 422
        assert (await member_state(runtime, store, order["customer"]["customer_id"]))["balance"] == 10

    async def test_reversal_after_spending_leaves_a_debt_paid_by_the_next_order(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        customer = make_customer()
        first = make_order(customer=customer, lines=[make_line(unit_price=5000)])
        await paid(client, store, first)
        async with runtime.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT 1 FROM members WHERE store_id = $1 AND customer_id = $2 FOR UPDATE",
                store.store_id,
                customer["customer_id"],
            )
            await ledger.debit(
                conn,
                store_id=store.store_id,
                customer_id=customer["customer_id"],
                kind="redeem",
                points=40,
                reason="test spend",
                now=runtime.clock(),
                allow_debt=False,
            )
        await send(client, store, "order.cancelled", {"order_id": first["order_id"]})
        state = await member_state(runtime, store, customer["customer_id"])
        assert state["balance"] == -40
        await paid(client, store, make_order(customer=customer, lines=[make_line(unit_price=6000)]))
        assert (await member_state(runtime, store, customer["customer_id"]))["balance"] == 20


class TestCancellation:
    async def test_cancel_reverses_everything_once(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        order = make_order(lines=[make_line(unit_price=4200)])
        await paid(client, store, order)
        await send(
            client,
            store,
            "order.refunded",
            {"order_id": order["order_id"], "refund_id": "r1", "amount": 1000, "lines": []},
        )
        first = await send(client, store, "order.cancelled", {"order_id": order["order_id"]})
        again = await send(client, store, "order.cancelled", {"order_id": order["order_id"]})
        assert first.json() == {"status": "applied"}
        assert again.json() == {"status": "duplicate"}
        state = await member_state(runtime, store, order["customer"]["customer_id"])
        assert state["balance"] == 0
        assert state["orders_count"] == 0


class TestOutOfOrder:
    @pytest.mark.parametrize("concurrent", [False, True])
    async def test_refund_before_its_order_ends_like_in_order(
        self, client: Client, runtime: Runtime, concurrent: bool
    ) -> None:
        in_order, out_of_order = await make_store(client), await make_store(client)
        order = make_order(lines=[make_line(unit_price=2000, quantity=2)])
        refund = {
            "order_id": order["order_id"],
            "refund_id": "r1",
            "amount": 2000,
            "lines": [{"line_id": order["lines"][0]["line_id"], "quantity": 1}],
        }
        await paid(client, in_order, order)
        await send(client, in_order, "order.refunded", refund)
        if concurrent:
            await asyncio.gather(
                send(client, out_of_order, "order.refunded", refund),
                send(client, out_of_order, "order.paid", order),
            )
        else:
            parked = await send(client, out_of_order, "order.refunded", refund)
            assert parked.json() == {"status": "parked"}
            await paid(client, out_of_order, order)
        cid = order["customer"]["customer_id"]
        expected = await member_state(runtime, in_order, cid)
        actual = await member_state(runtime, out_of_order, cid)
        assert actual["balance"] == expected["balance"] == 20


async def test_an_order_is_one_member_version_with_every_kind_it_touched(
    client: Client, store: StoreCreated, runtime: Runtime
) -> None:
    customer = make_customer()
    await paid(client, store, make_order(customer=customer))
    await paid(client, store, make_order(customer=customer, lines=[make_line(unit_price=60000)]))
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT version, kinds FROM member_changes WHERE store_id = $1 AND customer_id = $2"
            " ORDER BY version",
            store.store_id,
            customer["customer_id"],
        )
    assert [row["version"] for row in rows] == [1, 2]
    assert {"order", "points"} <= set(rows[0]["kinds"])
    assert {"order", "points", "tier"} <= set(rows[1]["kinds"])  # the second order made the member silver
