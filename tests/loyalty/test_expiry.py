"""The `points.expire` job: due lots expire once, set-based, with a `points.changed` per member."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from loyalty.stores import StoreCreated
from plugin import ledger_jobs
from plugin.jobs import JOB_HANDLERS, SCHEDULES
from plugin.ledger_jobs import expire_points
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from plugin.worker import Worker
from tests.conftest import bearer
from tests.events import make_customer, make_line, make_order, send
from tests.members import balance, check_invariants, new_member

Client = httpx.AsyncClient

PLACED = "2026-11-20T10:00:00Z"
AFTER_EXPIRY = datetime(2027, 11, 21, tzinfo=UTC)  # the default program keeps points 365 days


def at(runtime: Runtime, moment: datetime) -> Runtime:
    """The same runtime (pool, Redis) with its clock moved."""
    return dataclasses.replace(runtime, clock=lambda: moment)


def job(store: StoreCreated | None = None) -> Job:
    return Job(
        job_id=0,
        kind="points.expire",
        store_id=None if store is None else store.store_id,
        payload={},
        attempts=1,
        max_attempts=5,
    )


async def entries(runtime: Runtime, store: StoreCreated, kind: str) -> list[tuple[str, int]]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT customer_id, points FROM ledger_entries WHERE store_id = $1 AND kind = $2 "
            "ORDER BY entry_id",
            store.store_id,
            kind,
        )
    return [(row["customer_id"], row["points"]) for row in rows]


async def changes(runtime: Runtime, store: StoreCreated) -> list[dict[str, object]]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE store_id = $1 AND event_type = 'points.changed' "
            "AND payload->>'reason' = 'expiry' ORDER BY event_id",
            store.store_id,
        )
    return [row["payload"] for row in rows]


class TestExpiry:
    async def test_nothing_expires_before_its_time(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=100, placed_at=PLACED)
        await expire_points(at(runtime, AFTER_EXPIRY - timedelta(days=2)), job(store))
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 100
        assert await entries(runtime, store, "expire") == []

    async def test_due_points_expire_once(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=100, placed_at=PLACED)
        moved = at(runtime, AFTER_EXPIRY)
        await expire_points(moved, job(store))
        await expire_points(moved, job(store))  # idempotent: a job can run twice
        assert await entries(runtime, store, "expire") == [(cid, -100)]
        assert await changes(runtime, store) == [
            {"store_id": store.store_id, "customer_id": cid, "delta": -100, "balance": 0, "reason": "expiry"}
        ]
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 0
            await check_invariants(conn, store.store_id)
        view = (await client.get(f"/v1/members/{cid}", headers=bearer(store.api_keys["channel"]))).json()
        assert view["points"]["expiring"] == []

    async def test_only_what_is_left_of_a_lot_expires(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        customer = make_customer()
        cid = await new_member(client, store, points=800, placed_at=PLACED, customer=customer)
        later = make_order(
            customer=customer, lines=[make_line(unit_price=30000)], placed_at="2027-03-01T00:00:00Z"
        )
        # The first order made the member silver: this one earns 300 x 1.25 = 375, due in 2028.
        await send(client, store, "order.paid", later)
        redeemed = await client.post(
            f"/v1/members/{cid}/redemptions",
            json={"reward_id": "voucher-5"},
            headers=bearer(store.api_keys["channel"]) | {"Idempotency-Key": "r"},
        )
        assert redeemed.json()["balance"] == 675  # the redemption took 500 of the older lot
        await expire_points(at(runtime, AFTER_EXPIRY), job(store))
        assert await entries(runtime, store, "expire") == [(cid, -300)]
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 375
            await check_invariants(conn, store.store_id)

    async def test_many_members_in_batches(
        self, client: Client, store: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(ledger_jobs, "EXPIRY_BATCH_MEMBERS", 2)
        cids = [await new_member(client, store, points=10 * (n + 1), placed_at=PLACED) for n in range(5)]
        await expire_points(at(runtime, AFTER_EXPIRY), job())  # every store with due lots
        assert sorted(await entries(runtime, store, "expire")) == sorted(
            (cid, -10 * (n + 1)) for n, cid in enumerate(cids)
        )
        assert len(await changes(runtime, store)) == 5
        async with runtime.pool.acquire() as conn:
            await check_invariants(conn, store.store_id)

    async def test_debt_has_nothing_to_expire(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        customer = make_customer()
        cid = await new_member(client, store, points=600, placed_at=PLACED, customer=customer)
        order = make_order(customer=customer, lines=[make_line(unit_price=40000)], placed_at=PLACED)
        await send(client, store, "order.paid", order)
        await client.post(
            f"/v1/members/{cid}/redemptions",
            json={"reward_id": "voucher-10"},
            headers=bearer(store.api_keys["channel"]) | {"Idempotency-Key": "r"},
        )
        await send(client, store, "order.cancelled", {"order_id": order["order_id"]})  # 400 back: a debt
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 1000 - 950 - 400
        await expire_points(at(runtime, AFTER_EXPIRY), job(store))
        assert await entries(runtime, store, "expire") == []
        async with runtime.pool.acquire() as conn:
            await check_invariants(conn, store.store_id)

    async def test_races_with_redemptions_keep_the_ledger_whole(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        now = datetime.now(UTC)
        placed = (now - timedelta(days=364)).strftime("%Y-%m-%dT%H:%M:%SZ")  # expires tomorrow
        cid = await new_member(client, store, points=2000, placed_at=placed)
        # Redemptions run on the wall clock (the lot is theirs to spend while they hold the member's
        # lock); the job runs two days later and expires whatever is left when it gets the lock.
        redeem = [
            client.post(
                f"/v1/members/{cid}/redemptions",
                json={"reward_id": "voucher-5"},
                headers=bearer(store.api_keys["channel"]) | {"Idempotency-Key": f"k{i}"},
            )
            for i in range(4)
        ]
        results = await asyncio.gather(
            expire_points(at(runtime, now + timedelta(days=2)), job(store)), *redeem
        )
        redeemed = sum(500 for response in results[1:] if response.status_code == 201)
        assert await entries(runtime, store, "expire") == [(cid, -(2000 - redeemed))]
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 0
            await check_invariants(conn, store.store_id)


async def test_the_worker_runs_it_on_its_schedule(
    client: Client, store: StoreCreated, runtime: Runtime
) -> None:
    assert "points.expire" in JOB_HANDLERS
    assert any(schedule.kind == "points.expire" for schedule in SCHEDULES)
    cid = await new_member(client, store, points=100, placed_at=PLACED)
    worker = Worker(
        runtime=at(runtime, AFTER_EXPIRY + timedelta(days=3)), handlers=JOB_HANDLERS, schedules=SCHEDULES
    )
    await worker.run_once()
    async with runtime.pool.acquire() as conn:
        assert await balance(conn, store.store_id, cid) == 0
