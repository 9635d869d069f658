"""Redemptions: rewards for points, once per Idempotency-Key, never below zero, never twice."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from loyalty import ledger, redemptions
from loyalty.program import default_program
from loyalty.stores import StoreCreated
from plugin.ledger_jobs import purge_idempotency_keys
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from tests.conftest import bearer
from tests.members import balance, check_invariants, new_member

Client = httpx.AsyncClient


def channel(store: StoreCreated, idempotency_key: str | None = None) -> dict[str, str]:
    headers = bearer(store.api_keys["channel"])
    return headers | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})


async def redeem(
    client: Client, store: StoreCreated, cid: str, reward_id: str = "voucher-5", *, key: str = "k1"
) -> httpx.Response:
    return await client.post(
        f"/v1/members/{cid}/redemptions", json={"reward_id": reward_id}, headers=channel(store, key)
    )


async def outbox(runtime: Runtime, store: StoreCreated) -> list[tuple[str, dict[str, object]]]:
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE store_id = $1 ORDER BY event_id", store.store_id
        )
    return [(row["event_type"], row["payload"]) for row in rows]


class TestRedeem:
    async def test_issues_a_voucher_for_points(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=1200)
        response = await redeem(client, store, cid)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["reward_id"] == "voucher-5"
        assert body["points"] == 500
        assert body["balance"] == 700
        assert re.fullmatch(r"PTR(-[0-9A-HJKMNP-TV-Z]{4}){4}", body["voucher_code"])
        entries = (await client.get(f"/v1/members/{cid}/ledger", headers=channel(store))).json()["entries"]
        assert entries[0] | {"entry_id": 0, "created_at": None} == {
            "entry_id": 0,
            "kind": "redeem",
            "points": -500,
            "order_id": None,
            "refund_id": None,
            "redemption_id": body["redemption_id"],
            "reason": "redeemed 5 voucher",
            "rules": [],
            "program_version": 1,
            "expires_at": None,
            "available_at": None,
            "created_at": None,
        }
        events = await outbox(runtime, store)
        issued = [payload for kind, payload in events if kind == "reward.issued"]
        assert issued == [
            {
                "store_id": store.store_id,
                "customer_id": cid,
                "redemption_id": body["redemption_id"],
                "reward_id": "voucher-5",
                "reward_kind": "voucher",
                "value": 500,
                "voucher_code": body["voucher_code"],
                "points": 500,
            }
        ]
        assert events[-1] == (
            "points.changed",
            {
                "store_id": store.store_id,
                "customer_id": cid,
                "delta": -500,
                "balance": 700,
                "reason": "redeemed 5 voucher",
            },
        )

    async def test_not_enough_points_is_409_and_writes_nothing(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=499)
        before = await outbox(runtime, store)
        response = await redeem(client, store, cid)
        assert response.status_code == 409
        assert response.json()["type"] == "urn:patron:problem:insufficient-points"
        assert await outbox(runtime, store) == before
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 499
            assert (
                await conn.fetchval("SELECT count(*) FROM redemptions WHERE store_id = $1", store.store_id)
                == 0
            )
            key_rows = await conn.fetchval(
                "SELECT count(*) FROM idempotency_keys WHERE store_id = $1", store.store_id
            )
            assert key_rows == 0  # a failure is not remembered: the same key may be retried later

    async def test_unknown_member_is_404_and_unknown_reward_422(
        self, client: Client, store: StoreCreated
    ) -> None:
        assert (await redeem(client, store, "nobody")).status_code == 404
        cid = await new_member(client, store, points=1000)
        response = await redeem(client, store, cid, "yacht")
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "reward_id"

    async def test_idempotency_key_is_required(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=1000)
        response = await client.post(
            f"/v1/members/{cid}/redemptions", json={"reward_id": "voucher-5"}, headers=channel(store)
        )
        assert response.status_code == 400
        assert response.json()["type"] == "urn:patron:problem:idempotency-key-missing"

    async def test_pending_points_cannot_be_spent(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=100)
        now = datetime.now(UTC)
        async with runtime.pool.acquire() as conn, conn.transaction():
            await ledger.earn(
                conn,
                store_id=store.store_id,
                customer_id=cid,
                points=1000,
                reason="order in its return window",
                earned_at=now,
                now=now,
                expiry_days=365,
                pending_days=14,
            )
        view = (await client.get(f"/v1/members/{cid}", headers=channel(store))).json()
        assert view["points"] | {"expiring": []} == {
            "balance": 1100,
            "available": 100,
            "pending": 1000,
            "expiring": [],
        }
        assert (await redeem(client, store, cid)).status_code == 409
        later = now + timedelta(days=15)
        async with runtime.pool.acquire() as conn, conn.transaction():
            created = await redemptions.redeem(
                conn,
                store_id=store.store_id,
                customer_id=cid,
                reward_id="voucher-5",
                program=default_program(),
                now=later,
            )
        assert created.balance == 600

    async def test_spends_the_lots_nearest_expiry_first(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=500, placed_at="2026-06-01T00:00:00Z")
        # A goodwill lot without an order, expiring a year from now: after the order's lot.
        marketer = bearer(store.api_keys["marketer"])
        await client.post(
            f"/v1/members/{cid}/adjustments", json={"points": 500, "reason": "x"}, headers=marketer
        )
        assert (await redeem(client, store, cid)).status_code == 201
        async with runtime.pool.acquire() as conn:
            lots = await conn.fetch(
                "SELECT order_id, remaining FROM point_lots WHERE store_id = $1 AND customer_id = $2 "
                "ORDER BY lot_id",
                store.store_id,
                cid,
            )
            await check_invariants(conn, store.store_id)
        assert [(lot["order_id"] is None, lot["remaining"]) for lot in lots] == [(False, 0), (True, 500)]


class TestIdempotency:
    async def test_same_key_same_body_answers_the_same_once(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=1200)
        first = await redeem(client, store, cid, key="same")
        again = await redeem(client, store, cid, key="same")
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 700
        issued = [kind for kind, _ in await outbox(runtime, store) if kind == "reward.issued"]
        assert len(issued) == 1

    async def test_same_key_other_body_is_422(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=2000)
        await redeem(client, store, cid, "voucher-5", key="same")
        response = await redeem(client, store, cid, "voucher-10", key="same")
        assert response.status_code == 422
        assert response.json()["type"] == "urn:patron:problem:idempotency-key-reused"
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 1500

    async def test_keys_are_per_member(self, client: Client, store: StoreCreated) -> None:
        one = await new_member(client, store, points=600)
        two = await new_member(client, store, points=600)
        first = await redeem(client, store, one, key="k")
        second = await redeem(client, store, two, key="k")
        assert first.json()["redemption_id"] != second.json()["redemption_id"]
        assert second.json()["balance"] == 100

    async def test_concurrent_first_uses_of_a_key_deduct_once(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=5000)
        responses = await asyncio.gather(*(redeem(client, store, cid, key="burst") for _ in range(8)))
        assert {response.status_code for response in responses} == {201}
        assert len({response.json()["redemption_id"] for response in responses}) == 1
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == 4500
            count = await conn.fetchval(
                "SELECT count(*) FROM redemptions WHERE store_id = $1", store.store_id
            )
            assert count == 1

    async def test_keys_are_forgotten_after_a_week(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=1200)
        first = await redeem(client, store, cid, key="weekly")
        in_a_week = dataclasses.replace(runtime, clock=lambda: datetime.now(UTC) + timedelta(days=8))
        await purge_idempotency_keys(
            in_a_week,
            Job(job_id=0, kind="idempotency.purge", store_id=None, payload={}, attempts=1, max_attempts=1),
        )
        again = await redeem(client, store, cid, key="weekly")
        assert again.json()["redemption_id"] != first.json()["redemption_id"]
        assert again.json()["balance"] == 200


class TestConcurrency:
    @pytest.mark.parametrize(("points", "attempts"), [(1700, 8), (500, 6), (2999, 12)])
    async def test_parallel_redemptions_never_spend_the_same_points(
        self, client: Client, store: StoreCreated, runtime: Runtime, points: int, attempts: int
    ) -> None:
        cid = await new_member(client, store, points=points)
        responses = await asyncio.gather(*(redeem(client, store, cid, key=f"k{i}") for i in range(attempts)))
        statuses = sorted(response.status_code for response in responses)
        wins = points // 500
        assert statuses == [201] * wins + [409] * (attempts - wins)
        balances = sorted(response.json()["balance"] for response in responses if response.status_code == 201)
        assert balances == [points - 500 * n for n in range(wins, 0, -1)]
        async with runtime.pool.acquire() as conn:
            assert await balance(conn, store.store_id, cid) == points - 500 * wins
            await check_invariants(conn, store.store_id)
