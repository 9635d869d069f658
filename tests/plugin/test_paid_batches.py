"""Paid orders of concurrent deliveries applied in batches: each delivery still gets its own answer,
exactly once, and a batch that fails is applied one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec
import pytest

from hooks import inbox
from loyalty.errors import InvalidInput
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import bearer
from tests.events import make_customer, make_line, make_order, send, signed_headers
from tests.members import check_invariants
from tests.metrics import scrape

Client = httpx.AsyncClient


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The order ids of every batch applied, in order."""
    seen: list[list[str]] = []
    receive_paid = inbox.receive_paid

    async def recorded(conn: Any, *, deliveries: Sequence[inbox.PaidDelivery], **kwargs: Any) -> Any:
        seen.append([delivery.event.order_id for delivery in deliveries])
        return await receive_paid(conn, deliveries=deliveries, **kwargs)

    monkeypatch.setattr(inbox, "receive_paid", recorded)
    return seen


def statuses(responses: Sequence[httpx.Response]) -> list[str]:
    assert all(response.status_code == 200 for response in responses), [r.text for r in responses]
    return [response.json()["status"] for response in responses]


async def test_concurrent_orders_share_batches_and_each_is_credited(
    client: Client, store: StoreCreated, runtime: Runtime, batches: list[list[str]]
) -> None:
    orders = [make_order(lines=[make_line(unit_price=2000)]) for _ in range(12)]
    before = await scrape(client)
    answers = await asyncio.gather(*(send(client, store, "order.paid", order) for order in orders))
    assert statuses(answers) == ["applied"] * 12
    assert sorted(order_id for batch in batches for order_id in batch) == sorted(
        o["order_id"] for o in orders
    )
    assert len(batches) < len(orders)  # some were applied together
    after = await scrape(client)
    for series, grew in (("_count", len(batches)), ("_sum", len(orders))):
        name = "patron_paid_order_batch_size" + series
        assert after.value(name) - before.value(name) == grew
    async with runtime.pool.acquire() as conn:
        balances = await conn.fetch(
            "SELECT balance, orders_count FROM members WHERE store_id = $1 AND customer_id = ANY($2::text[])",
            store.store_id,
            [order["customer"]["customer_id"] for order in orders],
        )
        assert [(row["balance"], row["orders_count"]) for row in balances] == [(20, 1)] * 12
        await check_invariants(conn, store.store_id)


async def test_a_members_orders_in_one_burst_are_earned_one_after_the_other(
    client: Client, store: StoreCreated, runtime: Runtime, batches: list[list[str]]
) -> None:
    document = (await client.get("/v1/program", headers=bearer(store.api_keys["marketer"]))).json()
    document["rules"] = [{"kind": "first_order_bonus", "points": 50}]
    published = await client.put(
        "/v1/program",
        json=document,
        headers=bearer(store.api_keys["marketer"]) | {"If-Match": f'"v{document["version"]}"'},
    )
    assert published.status_code == 200, published.text
    customer = make_customer()
    orders = [make_order(customer=customer, lines=[make_line(unit_price=1000)]) for _ in range(4)]
    answers = await asyncio.gather(*(send(client, store, "order.paid", order) for order in orders))
    assert statuses(answers) == ["applied"] * 4
    assert all(len(batch) == 1 for batch in batches if any(o["order_id"] in batch for o in orders))
    async with runtime.pool.acquire() as conn:
        member = await conn.fetchrow(
            "SELECT balance, orders_count FROM members WHERE store_id = $1 AND customer_id = $2",
            store.store_id,
            customer["customer_id"],
        )
        assert (member["balance"], member["orders_count"]) == (4 * 10 + 50, 4)  # one first-order bonus
        await check_invariants(conn, store.store_id)


async def test_redeliveries_in_one_burst_credit_the_order_once(
    client: Client, store: StoreCreated, runtime: Runtime
) -> None:
    order = make_order(lines=[make_line(unit_price=3000)])
    body = msgspec.json.encode({"type": "order.paid", "data": order})
    path = f"/v1/hooks/standard/{store.store_id}"
    same_delivery = signed_headers(store.webhook_secret, body, event_id="msg_again")
    answers = await asyncio.gather(
        *(client.post(path, content=body, headers=same_delivery) for _ in range(4)),
        *(send(client, store, "order.paid", order, event_id=f"msg_other_{n}") for n in range(4)),
    )
    assert sorted(statuses(answers)) == ["applied"] + ["duplicate"] * 7
    async with runtime.pool.acquire() as conn:
        entries = await conn.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE store_id = $1 AND order_id = $2",
            store.store_id,
            order["order_id"],
        )
        assert entries == 1
        outcomes = await conn.fetch(
            "SELECT outcome, count(*) FROM inbox WHERE store_id = $1 AND event_id LIKE 'msg_other_%' "
            "GROUP BY outcome",
            store.store_id,
        )
        assert sum(row["count"] for row in outcomes) == 4  # every new event id was recorded, whatever it did
        await check_invariants(conn, store.store_id)


async def test_a_failing_batch_is_applied_one_by_one_and_only_the_bad_delivery_fails(
    client: Client, store: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = [make_order(lines=[make_line(unit_price=1000)]) for _ in range(8)]
    poisoned = orders[3]["order_id"]
    receive_paid = inbox.receive_paid
    sizes: list[int] = []

    async def refusing(conn: Any, *, deliveries: Sequence[inbox.PaidDelivery], **kwargs: Any) -> Any:
        sizes.append(len(deliveries))
        result = await receive_paid(conn, deliveries=deliveries, **kwargs)  # written, then rolled back
        if any(delivery.event.order_id == poisoned for delivery in deliveries):
            raise InvalidInput("refused for the test", field="data")
        return result

    monkeypatch.setattr(inbox, "receive_paid", refusing)
    answers = await asyncio.gather(*(send(client, store, "order.paid", order) for order in orders))
    assert [response.status_code for response in answers] == [200, 200, 200, 422, 200, 200, 200, 200]
    assert any(size > 1 for size in sizes)
    async with runtime.pool.acquire() as conn:
        credited = await conn.fetch(
            "SELECT order_id FROM orders WHERE store_id = $1 AND order_id = ANY($2::text[])",
            store.store_id,
            [order["order_id"] for order in orders],
        )
        assert sorted(row["order_id"] for row in credited) == sorted(
            order["order_id"] for order in orders if order["order_id"] != poisoned
        )
        await check_invariants(conn, store.store_id)


async def test_batches_and_a_store_wide_tier_pass_run_together_without_deadlock(
    client: Client, store: StoreCreated, runtime: Runtime
) -> None:
    # Members the pass will move (silver from 1,000 cents of spend) and who order during it: the
    # pass and the batches lock the same members, both in key order.
    customers = [make_customer() for _ in range(60)]
    first = [make_order(customer=customer, lines=[make_line(unit_price=2000)]) for customer in customers]
    assert (
        statuses(await asyncio.gather(*(send(client, store, "order.paid", o) for o in first)))
        == ["applied"] * 60
    )
    headers = bearer(store.api_keys["marketer"])
    document = (await client.get("/v1/program", headers=headers)).json()
    document["tiers"]["levels"][1]["threshold"] = 1000
    publish = client.put(
        "/v1/program", json=document, headers=headers | {"If-Match": f'"v{document["version"]}"'}
    )
    second = [
        make_order(customer=customer, lines=[make_line(unit_price=500)]) for customer in reversed(customers)
    ]
    published, *answers = await asyncio.gather(
        publish, *(send(client, store, "order.paid", o) for o in second)
    )
    assert published.status_code == 200, published.text
    assert statuses(answers) == ["applied"] * 60
    async with runtime.pool.acquire() as conn:
        tiers = await conn.fetch(
            "SELECT tier_code, orders_count FROM members "
            "WHERE store_id = $1 AND customer_id = ANY($2::text[])",
            store.store_id,
            [customer["customer_id"] for customer in customers],
        )
        assert {(row["tier_code"], row["orders_count"]) for row in tiers} == {("silver", 2)}
        await check_invariants(conn, store.store_id)
