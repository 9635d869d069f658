"""Property tests of the ledger: random histories through the real webhook and API.

Each example is a fresh store with two members and a random sequence of paid orders, refunds
(by amount, by lines, the rest of an order, or before their order arrives), cancellations,
redeliveries of any earlier webhook (same or new event id), redemptions (and their replays),
marketer adjustments and expiry runs at a moved clock. After every step:

- the ledger's invariants hold (`tests.members.check_invariants`): balance == sum of entries,
  each lot's consumed points == its consumptions, open lots == max(balance, 0);
- the state equals a reference model (`tests.loyalty.ledger_model`), lot by lot: earning floor(EUR), reversals
  in proportion with the last refund taking the remainder, debts, nearest-expiry-first
  consumption with the order's own lot first for reversals;
- per order, the ledger entries naming it sum to its points net of reversals, and to 0 once it
  is cancelled or refunded in whole;
- a redelivery (or a replayed redemption) answers `duplicate` (or the same response) and changes
  nothing at all.

Orders stay under 450 EUR per member so no member reaches the default program's silver tier
(whose multiplier the model leaves out); adjustments give the points redemptions spend.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, event, given, settings

from loyalty.repository import Connection
from loyalty.stores import StoreCreated
from plugin.ledger_jobs import expire_points
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from tests.conftest import bearer, make_store
from tests.events import make_customer, make_line, make_order, signed_headers
from tests.loyalty.ledger_model import (
    COSTS,
    Adjust,
    Cancel,
    Expire,
    Model,
    Order,
    Pay,
    Redeem,
    Redeliver,
    Refund,
    ReplayRedemption,
    histories,
)
from tests.members import check_invariants

Client = httpx.AsyncClient
MAX_SPEND = 45_000


# --- Running it ------------------------------------------------------------------------------


@dataclass
class Run:
    client: Client
    runtime: Runtime
    store: StoreCreated
    model: Model
    customers: list[dict[str, Any]]
    deliveries: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    redemptions: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    """What the example went through, for `--hypothesis-show-statistics`."""

    def cid(self, member: int) -> str:
        return str(self.customers[member]["customer_id"])

    async def deliver(self, event_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
        event_id = event_id or "msg_" + secrets.token_hex(8)
        body = msgspec.json.encode({"type": event_type, "data": data})
        headers = signed_headers(
            self.store.webhook_secret, body, event_id=event_id, at=int(self.model.now.timestamp())
        )
        response = await self.client.post(
            f"/v1/hooks/standard/{self.store.store_id}", content=body, headers=headers
        )
        assert response.status_code == 200, response.text
        self.deliveries.append((event_type, data, event_id))
        return str(response.json()["status"])

    def pick_order(self, pick: int) -> Order | None:
        orders = list(self.model.orders.values())
        return orders[pick % len(orders)] if orders else None

    async def step(self, op: object) -> None:
        model = self.model
        if isinstance(op, Pay):
            order_lines = [make_line(unit_price=price, quantity=quantity) for price, quantity in op.lines]
            subtotal = sum(line["unit_price"] * line["quantity"] for line in order_lines)
            if model.spend[op.member] + subtotal > MAX_SPEND:
                return
            model.spend[op.member] += subtotal
            placed_at = model.now - timedelta(days=op.age_days)
            data = make_order(
                customer=self.customers[op.member],
                lines=order_lines,
                placed_at=placed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            order = Order(data["order_id"], op.member, order_lines, subtotal, subtotal // 100)
            early = None
            if op.refund_first_pct is not None:
                early = {
                    "order_id": order.order_id,
                    "refund_id": "early",
                    "amount": subtotal * op.refund_first_pct // 100,
                }
                assert await self.deliver("order.refunded", early) == "parked"
            assert await self.deliver("order.paid", data) == "applied"
            model.balances.setdefault(op.member, 0)
            model.orders[order.order_id] = order
            if order.points:
                model.earn(op.member, order.points, placed_at + timedelta(days=365), order.order_id)
            if early is not None:
                model.refund(order, "early", early["amount"], {})
        elif isinstance(op, Refund):
            if (order := self.pick_order(op.pick)) is None:
                return
            quantities: dict[str, int] = {}
            if op.mode == "lines":
                quantities = {
                    line["line_id"]: quantity
                    for line, quantity in zip(order.lines, op.quantities, strict=False)
                    if quantity
                } or {order.lines[0]["line_id"]: 1}
                prices = {line["line_id"]: line["unit_price"] for line in order.lines}
                amount = sum(prices[line_id] * quantity for line_id, quantity in quantities.items())
            elif op.mode == "rest":
                amount = order.subtotal - order.refunded
            else:
                amount = order.subtotal * op.pct // 100
            refund_id = f"r{len(order.refund_ids)}"
            data = {
                "order_id": order.order_id,
                "refund_id": refund_id,
                "amount": amount,
                "lines": [
                    {"line_id": line_id, "quantity": quantity} for line_id, quantity in quantities.items()
                ],
            }
            assert await self.deliver("order.refunded", data) == "applied"
            model.refund(order, refund_id, amount, quantities)
        elif isinstance(op, Cancel):
            if (order := self.pick_order(op.pick)) is None:
                return
            expected = "duplicate" if order.cancelled else "applied"
            assert await self.deliver("order.cancelled", {"order_id": order.order_id}) == expected
            model.cancel(order)
        elif isinstance(op, Redeliver):
            if not self.deliveries:
                return
            event_type, data, event_id = self.deliveries[op.pick % len(self.deliveries)]
            before = await snapshot(self.runtime, self.store)
            assert await self.deliver(event_type, data, event_id if op.same_id else None) == "duplicate"
            self.seen.add(f"redelivered {event_type}")
            assert await snapshot(self.runtime, self.store) == before
        elif isinstance(op, Redeem):
            key = "k" + secrets.token_hex(6)
            body = {"reward_id": op.reward_id}
            response = await self.redeem(op.member, key, body)
            if op.member not in model.balances:
                assert response.status_code == 404
            elif model.open_points(op.member) >= COSTS[op.reward_id]:
                assert response.status_code == 201, response.text
                model.debit(op.member, COSTS[op.reward_id])
                assert response.json()["balance"] == model.balances[op.member]
                self.redemptions.append((self.cid(op.member), key, op.reward_id, response.json()))
            else:
                assert response.status_code == 409, response.text
                self.seen.add("redemption refused")
        elif isinstance(op, ReplayRedemption):
            if not self.redemptions:
                return
            cid, key, reward_id, answer = self.redemptions[op.pick % len(self.redemptions)]
            before = await snapshot(self.runtime, self.store)
            member = [self.cid(0), self.cid(1)].index(cid)
            response = await self.redeem(member, key, {"reward_id": reward_id})
            assert (response.status_code, response.json()) == (201, answer)
            self.seen.add("replayed a redemption")
            assert await snapshot(self.runtime, self.store) == before
        elif isinstance(op, Adjust):
            response = await self.client.post(
                f"/v1/members/{self.cid(op.member)}/adjustments",
                json={"points": op.points, "reason": "property"},
                headers=bearer(self.store.api_keys["marketer"]),
            )
            if op.member not in model.balances:
                assert response.status_code == 404
            elif op.points > 0:
                assert response.status_code == 201, response.text
                model.earn(op.member, op.points, model.now + timedelta(days=365), None)
            elif model.open_points(op.member) >= -op.points:
                assert response.status_code == 201, response.text
                model.debit(op.member, -op.points)
            else:
                assert response.status_code == 409, response.text
        elif isinstance(op, Expire):
            model.now += timedelta(days=op.days)
            job = Job(
                job_id=0,
                kind="points.expire",
                store_id=self.store.store_id,
                payload={},
                attempts=1,
                max_attempts=1,
            )
            await expire_points(self.runtime, job)
            model.expire()

    async def redeem(self, member: int, key: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            f"/v1/members/{self.cid(member)}/redemptions",
            json=body,
            headers=bearer(self.store.api_keys["channel"]) | {"Idempotency-Key": key},
        )


async def snapshot(runtime: Runtime, store: StoreCreated) -> tuple[object, ...]:
    """Everything an event or a write could change in a store."""
    async with runtime.pool.acquire() as conn:
        queries = [
            "SELECT customer_id, balance, orders_count FROM members WHERE store_id = $1 ORDER BY 1",
            "SELECT entry_id FROM ledger_entries WHERE store_id = $1 ORDER BY 1",
            "SELECT lot_id, remaining FROM point_lots WHERE store_id = $1 ORDER BY 1",
            "SELECT order_id, status, refunded, points_reversed FROM orders WHERE store_id = $1 ORDER BY 1",
            "SELECT order_id, line_id, refunded_qty FROM order_lines WHERE store_id = $1 ORDER BY 1, 2",
            "SELECT order_id, refund_id, points FROM refunds WHERE store_id = $1 ORDER BY 1, 2",
            "SELECT event_id FROM outbox WHERE store_id = $1 ORDER BY 1",
            "SELECT redemption_id FROM redemptions WHERE store_id = $1 ORDER BY 1",
        ]
        return tuple([[tuple(row) for row in await conn.fetch(query, store.store_id)] for query in queries])


async def check_against_model(conn: Connection, run: Run) -> None:
    model, store_id = run.model, run.store.store_id
    await check_invariants(conn, store_id)
    for member, expected in model.balances.items():
        cid = run.cid(member)
        got = await conn.fetchval(
            "SELECT balance FROM members WHERE store_id = $1 AND customer_id = $2", store_id, cid
        )
        assert got == expected, (member, got, expected)
        lots = await conn.fetch(
            "SELECT points, remaining, expires_at, order_id FROM point_lots "
            "WHERE store_id = $1 AND customer_id = $2 ORDER BY lot_id",
            store_id,
            cid,
        )
        assert [tuple(lot) for lot in lots] == [
            (lot.points, lot.remaining, lot.expires_at, lot.order_id) for lot in model.lots[member]
        ]
    run.seen |= {"a debt" for balance in model.balances.values() if balance < 0}
    run.seen |= {
        f"entry {row[0]}"
        for row in await conn.fetch("SELECT DISTINCT kind FROM ledger_entries WHERE store_id = $1", store_id)
    }
    for order in model.orders.values():
        if order.reversed:
            run.seen.add(
                "order undone in whole" if order.reversed == order.points else "order partly reversed"
            )
        row = await conn.fetchrow(
            "SELECT points, points_reversed, status, "
            "(SELECT coalesce(sum(points), 0) FROM ledger_entries e WHERE e.store_id = o.store_id "
            " AND e.order_id = o.order_id) AS ledger FROM orders o WHERE store_id = $1 AND order_id = $2",
            store_id,
            order.order_id,
        )
        assert (row["points"], row["points_reversed"]) == (order.points, order.reversed)
        assert row["status"] == ("cancelled" if order.cancelled else "paid")
        assert row["ledger"] == order.points - order.reversed
        if order.cancelled or order.refunded >= order.subtotal:
            assert row["ledger"] == 0  # undone in whole: exactly what it earned is reversed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=histories)
async def test_random_histories_keep_the_ledger_exact(
    client: Client, runtime: Runtime, ops: list[object]
) -> None:
    store = await make_store(client)
    run = Run(client, runtime, store, Model(), [make_customer(), make_customer()])
    real_clock = runtime.clock
    runtime.clock = lambda: run.model.now
    try:
        for op in ops:
            await run.step(op)
            async with runtime.pool.acquire() as conn:
                await check_against_model(conn, run)
    finally:
        runtime.clock = real_clock
    for seen in sorted(run.seen):
        event(seen)
