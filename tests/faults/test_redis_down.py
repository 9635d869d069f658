"""Redis unavailable (gone, or hung): reads fall back to PostgreSQL, writes succeed, health says
degraded, nothing waits long on Redis, and everything uses Redis again once it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import pytest
from redis.asyncio import Redis

from loyalty.stores import StoreCreated
from plugin import change_feed, profile_cache
from plugin.settings import Settings
from plugin.worker import Worker
from tests.conftest import eventually, make_store
from tests.events import make_customer, make_line, make_order, send
from tests.faults.conftest import Faulty
from tests.members import new_member
from tests.service import key, profile

DEGRADED = {"status": "degraded", "postgres": "ok", "redis": "down"}


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """Redis itself, not through the proxy: to see what the app left there."""
    assert settings.redis_url is not None
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("fault", ["cut", "hang"])
async def test_reads_fall_back_to_postgres_and_writes_succeed(
    faulty: Faulty, redis: Redis, fault: str
) -> None:
    client = faulty.client
    store = await make_store(client)
    cid = await new_member(client, store, points=10)
    channel = key(store, "channel")
    cached_at = (await profile(client, cid, channel))["version"]
    entry = profile_cache.cache_key(store.store_id, cid)
    assert await redis.get(entry) is not None

    await (faulty.redis.cut() if fault == "cut" else faulty.redis.hang())
    for path in ("/health", "/ready"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (200, DEGRADED)
    started = time.monotonic()
    assert (await profile(client, cid, channel))["points"]["balance"] == 10
    # A hung Redis costs the first read one short wait (0.5 s here, and one retry); then it is skipped.
    assert time.monotonic() - started < 2.5
    started = time.monotonic()
    reads = await asyncio.gather(*(client.get(f"/v1/members/{cid}", headers=channel) for _ in range(20)))
    assert [response.status_code for response in reads] == [200] * 20
    assert time.monotonic() - started < 2.5

    # Writes succeed, and the next read shows them (read-your-writes holds without the cache).
    order = make_order(
        customer=make_customer(customer_id=cid), lines=[make_line(unit_price=2000, product_id="p2")]
    )
    assert (await send(client, store, "order.paid", order)).json() == {"status": "applied"}
    adjusted = await client.post(
        f"/v1/members/{cid}/adjustments",
        json={"points": 5, "reason": "goodwill"},
        headers=key(store, "marketer"),
    )
    assert adjusted.status_code == 201, adjusted.text
    assert (await profile(client, cid, channel))["points"]["balance"] == 10 + 20 + 5
    # Recommendations, precomputed into Redis, come from PostgreSQL meanwhile.
    listed = await client.get(f"/v1/members/{cid}/recommendations?list=buy_again", headers=channel)
    assert listed.status_code == 200, listed.text
    assert listed.json()["model_version"] is None
    assert {item["product_id"] for item in listed.json()["items"]} == {"p1", "p2"}
    assert {item["reason"] for item in listed.json()["items"]} == {"bought_before"}
    if fault == "cut":
        assert await eventually(lambda: following(faulty, False), within=5)

    await faulty.redis.restore()
    assert await eventually(lambda: healthy(faulty), within=5)
    # Back in use: the next reads cache the profile at its new version again.
    assert await eventually(lambda: cached_beyond(faulty, redis, store, cid, cached_at), within=5)
    assert await eventually(lambda: following(faulty, True), within=5)


async def test_erasure_purges_the_cache_once_redis_is_back(faulty: Faulty, redis: Redis) -> None:
    client = faulty.client
    store = await make_store(client)
    cid = await new_member(client, store, points=10)
    await profile(client, cid, key(store, "channel"))
    entry = profile_cache.cache_key(store.store_id, cid)
    assert await redis.get(entry) is not None

    await faulty.redis.cut()
    erased = await client.delete(f"/v1/members/{cid}", headers=key(store, "marketer"))
    assert erased.status_code == 204, erased.text
    assert await redis.get(entry) is not None, "Redis was down: the entry is still there"
    assert (await client.get(f"/v1/members/{cid}", headers=key(store, "channel"))).status_code == 404

    await faulty.redis.restore()
    # The purge queued with the erasure: a worker drops the entry (retrying while Redis is down).
    worker = Worker(runtime=faulty.runtime, handlers={profile_cache.PURGE: profile_cache.purge_job})
    assert await worker.run_once() == 1
    assert await redis.get(entry) is None


async def test_followers_poll_postgres_while_redis_is_down(faulty: Faulty) -> None:
    client = faulty.client
    store = await make_store(client)
    cid = await new_member(client, store, points=10)
    start = (await profile(client, cid, key(store, "channel")))["version"]
    await faulty.redis.cut()
    seen: list[int] = []

    async def follow() -> None:
        async for change in change_feed.follow(
            faulty.runtime, store_id=store.store_id, customer_id=cid, since=start, keepalive=0.2
        ):
            if change is not None:
                seen.append(change.version)
                if len(seen) == 2:
                    return

    follower = asyncio.create_task(follow())
    for _ in range(2):
        await send(client, store, "order.paid", make_order(customer=make_customer(customer_id=cid)))
    async with asyncio.timeout(5):
        await follower
    assert seen == [start + 1, start + 2]


async def healthy(faulty: Faulty) -> bool:
    response = await faulty.client.get("/health")
    return bool(response.json()["status"] == "ok")


async def following(faulty: Faulty, expected: bool) -> bool:
    return faulty.runtime.keys.following.is_set() is expected


async def cached_beyond(faulty: Faulty, redis: Redis, store: StoreCreated, cid: str, version: int) -> bool:
    """Whether a read now leaves the profile cached at a version after `version`."""
    await profile(faulty.client, cid, key(store, "channel"))
    raw = await redis.get(profile_cache.cache_key(store.store_id, cid))
    return raw is not None and msgspec.msgpack.decode(raw, type=profile_cache.Entry).version > version
