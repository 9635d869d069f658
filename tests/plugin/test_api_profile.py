"""The one profile: read-your-writes on every channel, under real concurrency, and its cache."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from loyalty.stores import StoreCreated
from plugin import profile_cache
from plugin.redis_link import RedisBreaker
from plugin.runtime import Runtime
from tests.events import make_customer, make_line, make_order, send
from tests.members import new_member
from tests.service import key, member_token, profile

Client = httpx.AsyncClient


class TestReadYourWrites:
    async def test_every_kind_of_write_shows_in_the_next_read(
        self, client: Client, store: StoreCreated
    ) -> None:
        customer = make_customer()
        cid = await new_member(client, store, points=600, customer=customer)
        app = await member_token(client, store, cid)
        first = await profile(client, cid, app)
        assert first["version"] >= 1
        # A second order through the webhook.
        order = make_order(customer=customer, lines=[make_line(unit_price=2000)])
        await send(client, store, "order.paid", order)
        second = await profile(client, cid, app)
        assert second["points"]["balance"] > first["points"]["balance"]
        after_order = second["points"]["balance"]
        assert second["version"] > first["version"]
        # A redemption by the app, read by a channel.
        redeemed = await client.post(
            f"/v1/members/{cid}/redemptions",
            json={"reward_id": "voucher-5"},
            headers=app | {"Idempotency-Key": "r1"},
        )
        assert redeemed.status_code == 201, redeemed.text
        assert (await profile(client, cid, key(store, "channel")))["points"]["balance"] == after_order - 500
        # An adjustment by a marketer, a preference by the till.
        await client.post(
            f"/v1/members/{cid}/adjustments",
            json={"points": 5, "reason": "sorry"},
            headers=key(store, "marketer"),
        )
        await client.patch(
            f"/v1/members/{cid}/preferences",
            json={"channel": "till", "gift_wrap": True},
            headers=key(store, "channel"),
        )
        seen = await profile(client, cid, app)
        assert seen["points"]["balance"] == after_order - 495
        assert seen["preferences"]["gift_wrap"]["value"] is True
        # A refund through the webhook.
        refund = {"order_id": order["order_id"], "refund_id": "rf1", "amount": 2000, "lines": []}
        await send(client, store, "order.refunded", refund)
        assert (await profile(client, cid, app))["points"]["balance"] == first["points"]["balance"] - 495

    async def test_one_transaction_is_one_version(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=50)
        before = (await profile(client, cid, key(store, "channel")))["version"]
        await client.patch(
            f"/v1/members/{cid}/preferences",
            json={"channel": "web", "language": "de-DE", "tags": ["a"]},
            headers=key(store, "channel"),
        )
        assert (await profile(client, cid, key(store, "channel")))["version"] == before + 1

    @pytest.mark.parametrize("rounds", [10, pytest.param(100, marks=pytest.mark.slow)])
    async def test_a_thousand_reads_on_another_channel_are_never_stale(
        self, client: Client, store: StoreCreated, rounds: int
    ) -> None:
        """Writers on the till (channel key) and readers on the app (member token), concurrently:
        after each write returns, the app's next read shows it; meanwhile other readers hammer the
        same members so cache rebuilds race the writes. 10 members x 100 rounds in the slow run."""
        members = [await new_member(client, store, points=10) for _ in range(10)]
        tokens = {cid: await member_token(client, store, cid) for cid in members}
        stop = asyncio.Event()
        stale: list[tuple[str, int, object]] = []

        async def write_then_read(cid: str) -> None:
            for n in range(rounds):
                written = await client.patch(
                    f"/v1/members/{cid}/preferences",
                    json={"channel": "till", "tags": [f"t{n}"]},
                    headers=key(store, "channel"),
                )
                assert written.status_code == 200, written.text
                tags = (await profile(client, cid, tokens[cid]))["preferences"]["tags"]["value"]
                if tags != [f"t{n}"]:
                    stale.append((cid, n, tags))

        async def hammer(cid: str) -> None:
            while not stop.is_set():
                await profile(client, cid, key(store, "channel"))

        hammers = [asyncio.create_task(hammer(cid)) for cid in members[:3]]
        await asyncio.gather(*(write_then_read(cid) for cid in members))
        stop.set()
        await asyncio.gather(*hammers)
        assert stale == []


class TestProfileCache:
    async def test_warm_read_comes_from_redis(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=10)
        first = await client.get(f"/v1/members/{cid}", headers=key(store, "channel"))
        cached = await runtime.redis.get(profile_cache.cache_key(store.store_id, cid))
        assert cached is not None
        again = await client.get(f"/v1/members/{cid}", headers=key(store, "channel"))
        assert again.content == first.content
        assert again.headers["ETag"] == first.headers["ETag"]

    async def test_a_stale_entry_is_never_served(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        """Even with a write that bypassed the API (straight SQL), the version trigger moves on."""
        cid = await new_member(client, store, points=10)
        await profile(client, cid, key(store, "channel"))
        async with runtime.pool.acquire() as conn:
            await conn.execute(
                "UPDATE members SET first_name = 'Grace' WHERE store_id = $1 AND customer_id = $2",
                store.store_id,
                cid,
            )
        assert (await profile(client, cid, key(store, "channel")))["name"].startswith("Grace")

    async def test_redis_down_still_serves(
        self, client: Client, store: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cid = await new_member(client, store, points=10)

        async def broken(*_: object, **__: object) -> None:
            raise ConnectionError("redis is down")

        monkeypatch.setattr(runtime.redis, "get", broken)
        monkeypatch.setattr(runtime.redis, "set", broken)
        # A breaker of its own, which the failures trip: the run's runtime keeps using Redis after.
        monkeypatch.setattr(runtime, "redis_breaker", RedisBreaker())
        assert (await profile(client, cid, key(store, "channel")))["points"]["balance"] == 10

    async def test_time_alone_refreshes_pending_points(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        """A future order enters the tier window at its placed_at: the entry says until when it holds."""
        cid = await new_member(client, store, points=10, placed_at="2099-01-01T00:00:00Z")
        await profile(client, cid, key(store, "channel"))
        raw = await runtime.redis.get(profile_cache.cache_key(store.store_id, cid))
        entry = profile_cache._decoder.decode(raw)
        assert entry.valid_until is not None
