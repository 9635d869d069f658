"""PostgreSQL unavailable: 503 with Retry-After (nothing lost: platforms retry), health says so,
and service resumes by itself when it is back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import msgspec

from loyalty.stores import StoreCreated
from plugin import change_feed
from tests.conftest import eventually, make_store
from tests.events import make_customer, make_line, make_order, signed_headers
from tests.faults.conftest import Faulty
from tests.members import balance, check_invariants
from tests.service import key


def webhook(data: dict[str, Any]) -> tuple[bytes, str]:
    """An order.paid body and the event id a platform would resend it under."""
    return msgspec.json.encode({"type": "order.paid", "data": data}), "msg_" + data["order_id"]


async def deliver(
    client: httpx.AsyncClient, store: StoreCreated, body: bytes, event_id: str
) -> httpx.Response:
    """One (re)delivery, signed afresh as a platform's retry is."""
    headers = signed_headers(store.webhook_secret, body, event_id=event_id)
    return await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=headers)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:patron:problem:unavailable"
    assert int(response.headers["retry-after"]) > 0


async def healthy(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health")).status_code == 200


async def test_503_while_postgres_is_down_then_service_resumes_by_itself(faulty: Faulty) -> None:
    client = faulty.client
    store = await make_store(client)
    customer = make_customer()
    first = make_order(customer=customer, lines=[make_line(unit_price=1000)])
    assert (await deliver(client, store, *webhook(first))).status_code == 200
    cid = customer["customer_id"]
    assert (await client.get(f"/v1/members/{cid}", headers=key(store, "channel"))).status_code == 200

    await faulty.postgres.cut()
    for path in ("/health", "/ready"):
        response = await client.get(path)
        assert response.status_code == 503
        assert response.json() == {"status": "down", "postgres": "down", "redis": "ok"}
    second = webhook(make_order(customer=customer, lines=[make_line(unit_price=2500)]))
    assert_unavailable(await deliver(client, store, *second))
    # Reads: with a key already trusted, and with one that has to be looked up first.
    assert_unavailable(await client.get(f"/v1/members/{cid}", headers=key(store, "channel")))
    assert_unavailable(await client.get("/v1/me", headers=key(store, "marketer")))

    await faulty.postgres.restore()
    # The pool's connections died with the server: it opens new ones on demand.
    assert (await client.get("/health")).json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
    # The platform retries the webhook answered 503: it takes effect, once.
    assert (await deliver(client, store, *second)).json() == {"status": "applied"}
    assert (await deliver(client, store, *second)).json() == {"status": "duplicate"}
    assert (await client.get("/v1/me", headers=key(store, "marketer"))).status_code == 200
    async with faulty.runtime.pool.acquire() as conn:
        assert await balance(conn, store.store_id, cid) == 10 + 25
        await check_invariants(conn, store.store_id)
    # The member change relay lost its listening connection with the server, and listens again
    # (changes committed before it does are not relayed: followers catch up on their next check).
    async with faulty.runtime.redis.pubsub() as pubsub, asyncio.timeout(15):
        await pubsub.subscribe(change_feed.redis_channel(store.store_id, cid))
        while True:
            assert (await deliver(client, store, *webhook(make_order(customer=customer)))).status_code == 200
            if await pubsub.get_message(ignore_subscribe_messages=True, timeout=1) is not None:
                break


async def test_postgres_lost_mid_burst_loses_and_doubles_nothing(faulty: Faulty) -> None:
    """Webhooks in flight when PostgreSQL goes away are answered 2xx only if they committed; the
    platform's retries of the rest apply each exactly once."""
    client = faulty.client
    store = await make_store(client)
    members = [make_customer() for _ in range(5)]
    burst = [
        webhook(make_order(customer=members[n % 5], lines=[make_line(unit_price=100 * (n + 1))]))
        for n in range(40)
    ]
    acknowledged: set[int] = set()
    under_way = asyncio.Event()

    async def send(n: int) -> int:
        response = await deliver(client, store, *burst[n])
        if response.status_code == 200:
            acknowledged.add(n)
            if len(acknowledged) == 8:
                under_way.set()
        else:
            assert_unavailable(response)
        return response.status_code

    sending = [asyncio.create_task(send(n)) for n in range(len(burst))]
    await under_way.wait()
    await faulty.postgres.cut()
    statuses = await asyncio.gather(*sending)
    assert 503 in statuses, "the cut came after the burst"
    await faulty.postgres.restore()

    async with faulty.runtime.pool.acquire() as conn:
        orders = await conn.fetchval("SELECT count(*) FROM orders WHERE store_id = $1", store.store_id)
    # Every acknowledged event is there; some answered 503 may be too (cut during their COMMIT).
    assert len(acknowledged) <= orders <= len(burst)
    retried = await asyncio.gather(
        *(deliver(client, store, *burst[n]) for n in range(len(burst)) if n not in acknowledged)
    )
    assert {response.json()["status"] for response in retried} <= {"applied", "duplicate"}
    async with faulty.runtime.pool.acquire() as conn:
        await check_invariants(conn, store.store_id)
        applied = await conn.fetch(
            "SELECT o.order_id, count(e.entry_id) AS entries, sum(e.points) AS points"
            " FROM orders o JOIN ledger_entries e USING (store_id, order_id)"
            " WHERE o.store_id = $1 GROUP BY o.order_id",
            store.store_id,
        )
        total = sum([await balance(conn, store.store_id, m["customer_id"]) for m in members])
    assert len(applied) == len(burst)
    assert all(row["entries"] == 1 for row in applied), "each order credited once"
    assert total == sum(n + 1 for n in range(len(burst)))  # 1 point per EUR


async def test_health_answers_in_time_when_postgres_hangs(faulty: Faulty) -> None:
    """A PostgreSQL that accepts connections and never answers: health still answers, in its 2 s."""
    await faulty.postgres.hang()
    started = time.monotonic()
    response = await faulty.client.get("/health")
    assert time.monotonic() - started < 3.5
    assert (response.status_code, response.json()["postgres"]) == (503, "down")
    await faulty.postgres.restore()
    assert await eventually(lambda: healthy(faulty.client), within=10)
