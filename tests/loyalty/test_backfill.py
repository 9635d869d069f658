"""Backfill: set-based loading of canonical events, idempotent, and equal to the webhook path."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import msgspec
import pytest

from loyalty import backfill
from loyalty.backfill import BadLine, Summary
from loyalty.repository import stores as stores_repo
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import make_store
from tests.events import make_customer, make_line, make_order, send

Client = httpx.AsyncClient
Event = tuple[str, dict[str, Any]]

# What a store holds after a load, table by table (ids of generated rows left out).
SNAPSHOT = {
    "members": "SELECT customer_id, email, first_name, birthday, tier_code, balance, orders_count "
    "FROM members WHERE store_id = $1 ORDER BY customer_id",
    "orders": "SELECT order_id, customer_id, subtotal, status, refunded, points, points_reversed, awarded "
    "FROM orders WHERE store_id = $1 ORDER BY order_id",
    "order_lines": "SELECT order_id, line_id, product_id, category, quantity, unit_price, refunded_qty "
    "FROM order_lines WHERE store_id = $1 ORDER BY order_id, line_id",
    "refunds": "SELECT order_id, refund_id, amount, points FROM refunds WHERE store_id = $1 "
    "ORDER BY order_id, refund_id",
    "products": "SELECT product_id, title, category, price FROM products WHERE store_id = $1 "
    "ORDER BY product_id",
    "parked_events": "SELECT order_id, event_type, payload FROM parked_events WHERE store_id = $1 "
    "ORDER BY parked_id",
    "ledger_entries": "SELECT customer_id, kind, points, order_id, refund_id FROM ledger_entries "
    "WHERE store_id = $1 ORDER BY customer_id, order_id, kind, points",
}


def jsonl(events: list[Event]) -> list[bytes]:
    return [msgspec.json.encode({"type": kind, "data": data}) for kind, data in events]


async def load(runtime: Runtime, store: StoreCreated, lines: list[bytes], **options: Any) -> Summary:
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await stores_repo.get_store(conn, store_id=store.store_id)
        assert row is not None
        return await backfill.load(conn, store=row, lines=lines, now=runtime.clock(), **options)


async def snapshot(runtime: Runtime, store: StoreCreated) -> dict[str, list[tuple[Any, ...]]]:
    async with runtime.pool.acquire() as conn:
        return {
            table: [tuple(row) for row in await conn.fetch(sql, store.store_id)]
            for table, sql in SNAPSHOT.items()
        }


def history() -> list[Event]:
    """Two customers, a product, four orders, two refunds (one by lines), a cancellation and a
    refund whose order is not in the file."""
    ada = make_customer(customer_id="ada", birthday="1990-05-01")
    bob = make_customer(customer_id="bob", email="bob@example.com")
    mug = {"product_id": "mug", "title": "Mug", "category": "kitchen", "price": 900, "tags": ["blue"]}
    lines = [make_line(line_id="1", product_id="mug", category=None, quantity=2, unit_price=900)]
    lines.append(make_line(line_id="2", product_id="tea", quantity=3, unit_price=450))
    return [
        ("customer.upserted", ada),
        ("product.upserted", mug),
        ("order.paid", make_order(order_id="o1", customer=ada, lines=lines)),
        ("order.paid", make_order(order_id="o2", customer=ada, placed_at="2026-11-21T10:00:00Z")),
        ("order.paid", make_order(order_id="o3", customer=bob, lines=[make_line(unit_price=12345)])),
        ("order.paid", make_order(order_id="o4", customer=bob)),
        ("order.refunded", {"order_id": "o1", "refund_id": "r1", "amount": 900, "lines": [{"line_id": "1", "quantity": 1}]}),  # noqa: E501
        ("order.refunded", {"order_id": "o3", "refund_id": "r2", "amount": 2000}),
        ("order.cancelled", {"order_id": "o4"}),
        ("order.refunded", {"order_id": "elsewhere", "refund_id": "r3", "amount": 100}),
    ]  # fmt: skip


class TestSetBased:
    async def test_loads_members_orders_lines_refunds_without_points(
        self, client: Client, runtime: Runtime
    ) -> None:
        store = await make_store(client)
        summary = await load(runtime, store, jsonl(history()))
        assert (summary.customers, summary.members_created, summary.products) == (2, 2, 3)
        assert (summary.orders, summary.order_lines, summary.refunds, summary.cancellations) == (4, 5, 2, 1)
        assert summary.parked == 1
        state = await snapshot(runtime, store)
        assert state["members"] == [
            ("ada", "ada@example.com", "Ada", date(1990, 5, 1), "member", 0, 2),
            ("bob", "bob@example.com", "Ada", None, "member", 0, 1),
        ]
        assert [row[:6] for row in state["orders"]] == [
            ("o1", "ada", 3150, "paid", 900, 0),
            ("o2", "ada", 1000, "paid", 0, 0),
            ("o3", "bob", 12345, "paid", 2000, 0),
            ("o4", "bob", 1000, "cancelled", 0, 0),
        ]
        assert all(row[7] is False for row in state["orders"])  # awarded
        o1_lines = [row for row in state["order_lines"] if row[0] == "o1"]
        # A line without a category takes the catalogue's; the refund named line 1.
        assert o1_lines == [("o1", "1", "mug", "kitchen", 2, 900, 1), ("o1", "2", "tea", "coffee", 3, 450, 0)]
        assert [row[:3] for row in state["refunds"]] == [("o1", "r1", 900), ("o3", "r2", 2000)]
        assert ("tea", "Coffee beans", "coffee", 450) in state["products"]
        assert ("mug", "Mug", "kitchen", 900) in state["products"]
        assert [row[:2] for row in state["parked_events"]] == [("elsewhere", "order.refunded")]
        assert state["ledger_entries"] == []

    async def test_running_it_again_changes_nothing(self, client: Client, runtime: Runtime) -> None:
        store = await make_store(client)
        lines = jsonl(history())
        await load(runtime, store, lines)
        before = await snapshot(runtime, store)
        again = await load(runtime, store, lines)
        assert await snapshot(runtime, store) == before
        assert (again.orders, again.order_lines, again.refunds, again.cancellations) == (0, 0, 0, 0)
        assert (again.orders_known, again.members_created) == (4, 0)

    async def test_small_chunks_give_the_same_result(self, client: Client, runtime: Runtime) -> None:
        one, many = await make_store(client), await make_store(client)
        lines = jsonl(history())
        await load(runtime, one, lines)
        await load(runtime, many, lines, chunk_lines=1)
        assert await snapshot(runtime, many) == await snapshot(runtime, one)

    async def test_a_refund_parked_by_a_webhook_applies_when_the_backfill_brings_its_order(
        self, client: Client, runtime: Runtime
    ) -> None:
        store = await make_store(client)
        refund = {"order_id": "late", "refund_id": "r9", "amount": 400}
        assert (await send(client, store, "order.refunded", refund)).json() == {"status": "parked"}
        await load(runtime, store, jsonl([("order.paid", make_order(order_id="late"))]))
        state = await snapshot(runtime, store)
        assert state["parked_events"] == []
        assert state["refunds"] == [("late", "r9", 400, 0)]
        assert state["orders"][0][4] == 400

    async def test_newest_customer_snapshot_wins(self, client: Client, runtime: Runtime) -> None:
        store = await make_store(client)
        new = make_customer(customer_id="c", first_name="New", updated_at="2026-02-01T00:00:00Z")
        old = make_customer(customer_id="c", first_name="Old", updated_at="2026-01-01T00:00:00Z")
        embedded = make_customer(customer_id="c", first_name="Embedded")
        events: list[Event] = [
            ("customer.upserted", new),
            ("customer.upserted", old),
            ("order.paid", make_order(customer=embedded)),
        ]
        await load(runtime, store, jsonl(events))
        assert (await snapshot(runtime, store))["members"][0][2] == "New"

    async def test_an_orders_customer_fills_in_a_member_once_across_chunks(
        self, client: Client, runtime: Runtime
    ) -> None:
        store = await make_store(client)
        first = make_customer(customer_id="c", first_name="First")
        later = make_customer(customer_id="c", first_name="Later")
        events: list[Event] = [
            ("order.paid", make_order(customer=first)),
            ("order.paid", make_order(customer=later)),
            ("customer.upserted", make_customer(customer_id="d", first_name="Snapshot")),
            ("order.paid", make_order(customer=make_customer(customer_id="d", first_name="Embedded"))),
        ]
        summary = await load(runtime, store, jsonl(events), chunk_lines=1)
        assert (summary.members_created, summary.orders) == (2, 3)
        members = (await snapshot(runtime, store))["members"]
        assert [(row[0], row[2], row[6]) for row in members] == [("c", "First", 2), ("d", "Snapshot", 1)]

    async def test_the_tier_pass_leaves_the_planner_as_it_was(self, client: Client, runtime: Runtime) -> None:
        """The store-wide tier pass runs without nested loops (history outside the tier window made
        it quadratic); the transaction goes on with the setting it had."""
        store = await make_store(client)
        old = make_order(placed_at="2010-12-01T08:26:00Z")
        async with runtime.pool.acquire() as conn, conn.transaction():
            row = await stores_repo.get_store(conn, store_id=store.store_id)
            assert row is not None
            await backfill.load(conn, store=row, lines=jsonl([("order.paid", old)]), now=runtime.clock())
            assert await conn.fetchval("SHOW enable_nestloop") == "on"

    async def test_with_the_foreign_key_checked_the_result_is_the_same(
        self, client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fast, checked = await make_store(client), await make_store(client)
        lines = jsonl(history())
        await load(runtime, fast, lines)
        monkeypatch.setattr(backfill, "SKIP_KEY_CHECK", False)
        await load(runtime, checked, lines)
        assert await snapshot(runtime, checked) == await snapshot(runtime, fast)

    async def test_orders_refunds_and_cancellations_end_as_the_webhooks_leave_them(
        self, client: Client, runtime: Runtime
    ) -> None:
        """Everything but points: out of order, duplicated, over-refunded, cancelled between refunds."""
        lines = [make_line(line_id="a", quantity=2), make_line(line_id="b", quantity=1)]
        paid = make_order(order_id="x", lines=lines)
        refund = {
            "order_id": "x",
            "refund_id": "r1",
            "amount": 1000,
            "lines": [{"line_id": "a", "quantity": 1}],
        }
        twice = refund | {"refund_id": "r2", "amount": 5000, "lines": [{"line_id": "a", "quantity": 2}]}
        events: list[Event] = [
            ("order.refunded", refund),
            ("order.paid", paid),
            ("order.paid", paid),
            ("order.refunded", twice),
            ("order.paid", make_order(order_id="y", customer=paid["customer"])),
            ("order.cancelled", {"order_id": "y"}),
            ("order.refunded", {"order_id": "y", "refund_id": "r3", "amount": 100}),
            ("order.cancelled", {"order_id": "y"}),
        ]
        hooked, loaded = await make_store(client), await make_store(client)
        for kind, data in events:
            assert (await send(client, hooked, kind, data)).status_code == 200
        await load(runtime, loaded, jsonl(events))
        expected, got = await snapshot(runtime, hooked), await snapshot(runtime, loaded)
        for table, columns in {
            "orders": slice(0, 5),
            "order_lines": slice(0, 7),
            "refunds": slice(0, 3),
        }.items():
            assert [row[columns] for row in got[table]] == [row[columns] for row in expected[table]], table
        assert [row[6] for row in got["members"]] == [row[6] for row in expected["members"]]  # orders_count
        assert got["parked_events"] == expected["parked_events"] == []


class TestBadLines:
    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            (b'{"type": "order.paid", "data": {"order_id": "x"}}', "line 3: Object missing required field"),
            (b'{"type": "order.exploded", "data": {}}', "line 3: Invalid value 'order.exploded'"),
            (b"not json", "line 3: JSON is malformed"),
            (
                msgspec.json.encode(
                    {"type": "order.paid", "data": make_order(placed_at="2026-01-01T10:00:00")}
                ),
                "line 3: placed_at needs a time zone offset",
            ),
            (
                msgspec.json.encode(
                    {"type": "order.paid", "data": make_order(lines=[make_line(title="a\x00b")])}
                ),
                r"line 3: title must not contain NUL .* \(at data.lines\[0\].title\)",
            ),
            (
                msgspec.json.encode(
                    {"type": "customer.upserted", "data": make_customer(birthday="1899-12-31")}
                ),
                "line 3: birthday must be within 1900-2099",
            ),
        ],
    )
    async def test_a_bad_line_aborts_and_writes_nothing(
        self, client: Client, runtime: Runtime, bad: bytes, message: str
    ) -> None:
        store = await make_store(client)
        lines = [*jsonl(history()[:2]), bad, *jsonl(history()[2:])]
        with pytest.raises(BadLine, match=message) as raised:
            await load(runtime, store, lines, chunk_lines=1)
        assert raised.value.line_no == 3
        assert all(rows == [] for rows in (await snapshot(runtime, store)).values())

    async def test_a_refund_of_lines_the_order_lacks_names_its_line(
        self, client: Client, runtime: Runtime
    ) -> None:
        store = await make_store(client)
        refund = {
            "order_id": "o1",
            "refund_id": "r",
            "amount": 1,
            "lines": [{"line_id": "nope", "quantity": 1}],
        }
        events: list[Event] = [("order.paid", make_order(order_id="o1")), ("order.refunded", refund)]
        with pytest.raises(BadLine, match=r"line 2: order o1 has no lines \['nope'\]"):
            await load(runtime, store, jsonl(events))
        assert all(rows == [] for rows in (await snapshot(runtime, store)).values())


class TestAwardPoints:
    async def test_balances_equal_the_webhook_path(self, client: Client, runtime: Runtime) -> None:
        events = history()
        hooked, loaded = await make_store(client), await make_store(client)
        for kind, data in events:
            assert (await send(client, hooked, kind, data)).status_code == 200
        summary = await load(runtime, loaded, jsonl(events), award=True)
        assert (summary.orders, summary.refunds, summary.cancellations, summary.parked) == (4, 2, 1, 1)
        expected, got = await snapshot(runtime, hooked), await snapshot(runtime, loaded)
        assert got["ledger_entries"] == expected["ledger_entries"]
        assert got["members"] == expected["members"]
        assert got["orders"] == expected["orders"]
        assert sum(row[5] for row in got["members"]) > 0

    async def test_running_it_again_awards_nothing_more(self, client: Client, runtime: Runtime) -> None:
        store = await make_store(client)
        lines = jsonl(history())
        await load(runtime, store, lines, award=True)
        before = await snapshot(runtime, store)
        again = await load(runtime, store, lines, award=True)
        assert await snapshot(runtime, store) == before
        assert (again.orders, again.orders_known) == (0, 4)

    async def test_without_award_a_later_webhook_refund_reverses_nothing(
        self, client: Client, runtime: Runtime
    ) -> None:
        store = await make_store(client)
        await load(runtime, store, jsonl([("order.paid", make_order(order_id="o1"))]))
        refund = {"order_id": "o1", "refund_id": "r", "amount": 500}
        assert (await send(client, store, "order.refunded", refund)).json() == {"status": "applied"}
        state = await snapshot(runtime, store)
        assert state["ledger_entries"] == []
        assert state["orders"][0][4] == 500
