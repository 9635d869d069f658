"""The standard inbound webhook: signatures, parsing, exactly-once effects."""

from __future__ import annotations

import asyncio
import time

import httpx
import msgspec
import pytest

from hooks.signing import sign
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.events import make_line, make_order, send, signed_headers

Client = httpx.AsyncClient


async def count(runtime: Runtime, table: str, store: StoreCreated) -> int:
    async with runtime.pool.acquire() as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE store_id = $1", store.store_id))  # noqa: S608


async def balance(runtime: Runtime, store: StoreCreated, customer_id: str) -> int:
    async with runtime.pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT balance FROM members WHERE store_id = $1 AND customer_id = $2",
                store.store_id,
                customer_id,
            )
        )


class TestSignature:
    async def test_bad_signature_is_401_and_writes_nothing(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        body = msgspec.json.encode({"type": "order.paid", "data": make_order()})
        headers = signed_headers("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", body)
        response = await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["type"] == "urn:patron:problem:invalid-signature"
        assert await count(runtime, "inbox", store) == 0
        assert await count(runtime, "orders", store) == 0

    async def test_stale_timestamp_is_401(self, client: Client, store: StoreCreated) -> None:
        body = msgspec.json.encode({"type": "order.paid", "data": make_order()})
        headers = signed_headers(store.webhook_secret, body, at=int(time.time()) - 301)
        response = await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=headers)
        assert response.status_code == 401

    async def test_one_valid_signature_among_several_suffices(
        self, client: Client, store: StoreCreated
    ) -> None:
        body = msgspec.json.encode({"type": "order.paid", "data": make_order()})
        headers = signed_headers(store.webhook_secret, body)
        old = sign(
            "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJC",
            msg_id=headers["webhook-id"],
            timestamp=int(headers["webhook-timestamp"]),
            body=body,
        )
        headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
        response = await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=headers)
        assert response.status_code == 200
        assert response.json() == {"status": "applied"}

    async def test_tampered_body_is_401(self, client: Client, store: StoreCreated) -> None:
        body = msgspec.json.encode({"type": "order.paid", "data": make_order()})
        headers = signed_headers(store.webhook_secret, body)
        response = await client.post(
            f"/v1/hooks/standard/{store.store_id}", content=body.replace(b"1000", b"9000"), headers=headers
        )
        assert response.status_code == 401


class TestPayload:
    @pytest.mark.parametrize(
        ("body", "status"),
        [
            (b"not json", 400),
            (b'{"type": "order.paid"}', 422),
            (b'{"type": "order.exploded", "data": {}}', 422),
            (b'{"type": "order.paid", "data": {"order_id": "x"}}', 422),
        ],
    )
    async def test_unintelligible_payload_writes_nothing(
        self, client: Client, store: StoreCreated, runtime: Runtime, body: bytes, status: int
    ) -> None:
        headers = signed_headers(store.webhook_secret, body)
        response = await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert await count(runtime, "inbox", store) == 0

    async def test_negative_amount_names_the_field(self, client: Client, store: StoreCreated) -> None:
        response = await send(client, store, "order.paid", make_order(subtotal=-5))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "data.subtotal"


class TestExactlyOnce:
    async def test_order_credits_points_once_per_event_id(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        order = make_order(lines=[make_line(unit_price=2599, quantity=2)])
        first = await send(client, store, "order.paid", order, event_id="evt-1")
        again = await send(client, store, "order.paid", order, event_id="evt-1")
        assert first.json() == {"status": "applied"}
        assert again.json() == {"status": "duplicate"}
        assert await balance(runtime, store, order["customer"]["customer_id"]) == 51

    async def test_same_order_under_another_event_id_is_duplicate(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        order = make_order()
        await send(client, store, "order.paid", order)
        response = await send(client, store, "order.paid", order)
        assert response.json() == {"status": "duplicate"}
        assert await balance(runtime, store, order["customer"]["customer_id"]) == 10
        assert await count(runtime, "ledger_entries", store) == 1

    async def test_concurrent_duplicates_apply_once(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        order = make_order()
        responses = await asyncio.gather(
            *(send(client, store, "order.paid", order, event_id="same") for _ in range(8))
        )
        statuses = sorted(response.json()["status"] for response in responses)
        assert statuses == ["applied"] + ["duplicate"] * 7
        assert await balance(runtime, store, order["customer"]["customer_id"]) == 10
