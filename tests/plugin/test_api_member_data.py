"""Following a member (change log, fan-out, SSE), export and erasure."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from loyalty.stores import StoreCreated
from plugin import change_feed, profile_cache
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.members import new_member
from tests.service import key, member_token, profile

Client = httpx.AsyncClient


async def set_tags(client: Client, store: StoreCreated, cid: str, *tags: str) -> None:
    response = await client.patch(
        f"/v1/members/{cid}/preferences",
        json={"channel": "web", "tags": list(tags)},
        headers=key(store, "channel"),
    )
    assert response.status_code == 200, response.text


class TestChanges:
    async def test_every_version_is_listed_with_its_kind(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        start = (await profile(client, cid, key(store, "channel")))["version"]
        await set_tags(client, store, cid, "a")
        await client.post(
            f"/v1/members/{cid}/cases",
            json={"channel": "chat", "subject": "s", "category": "c"},
            headers=key(store, "channel"),
        )
        page = (
            await client.get(f"/v1/members/{cid}/changes?since={start}", headers=key(store, "channel"))
        ).json()
        assert [item["version"] for item in page["items"]] == [start + 1, start + 2]
        assert page["items"][0]["kinds"] == ["preferences"]
        assert "case" in page["items"][1]["kinds"]
        assert page["version"] == start + 2
        everything = (await client.get(f"/v1/members/{cid}/changes", headers=key(store, "channel"))).json()
        assert [item["version"] for item in everything["items"]] == list(range(1, start + 3))

    async def test_fan_out_delivers_committed_changes(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=10)
        start = (await profile(client, cid, key(store, "channel")))["version"]
        seen: list[int] = []

        async def listen() -> None:
            async for change in change_feed.follow(
                runtime, store_id=store.store_id, customer_id=cid, since=start, keepalive=0.2
            ):
                if change is not None:
                    seen.append(change.version)
                    if len(seen) == 2:
                        return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.1)
        await set_tags(client, store, cid, "x")
        await set_tags(client, store, cid, "y")
        async with asyncio.timeout(5):
            await listener
        assert seen == [start + 1, start + 2]

    async def test_the_relay_publishes_to_redis(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=10)
        async with runtime.redis.pubsub() as pubsub:
            await pubsub.subscribe(change_feed.redis_channel(store.store_id, cid))
            await set_tags(client, store, cid, "z")
            version = (await profile(client, cid, key(store, "channel")))["version"]
            published: list[int] = []
            async with asyncio.timeout(5):
                while version not in published:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        published.append(int(message["data"]))

    async def test_other_member_token_is_refused(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        other = await new_member(client, store, points=10)
        token = await member_token(client, store, cid)
        for path in ("changes", "events", "export", "preferences", "timeline"):
            assert (await client.get(f"/v1/members/{other}/{path}", headers=token)).status_code == 404


class TestPrivacy:
    async def test_export_has_everything(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        await set_tags(client, store, cid, "vip")
        exported = await client.get(f"/v1/members/{cid}/export", headers=key(store, "marketer"))
        assert exported.status_code == 200, exported.text
        data = exported.json()["data"]
        assert data["member"]["email"] == "ada@example.com"
        assert len(data["orders"]) == 1
        assert data["orders"][0]["lines"]
        assert data["ledger"][0]["points"] == 10
        assert data["preference_changes"][0]["key"] == "tags"
        own = await client.get(f"/v1/members/{cid}/export", headers=await member_token(client, store, cid))
        assert own.status_code == 200
        assert (
            await client.get(f"/v1/members/{cid}/export", headers=key(store, "channel"))
        ).status_code == 403

    async def test_erasure_removes_personal_data_keeps_books(
        self, client: Client, store: StoreCreated, runtime: Runtime
    ) -> None:
        cid = await new_member(client, store, points=10)
        await set_tags(client, store, cid, "vip")
        await profile(client, cid, key(store, "channel"))  # cached
        assert (await client.delete(f"/v1/members/{cid}", headers=key(store, "channel"))).status_code == 403
        erased = await client.delete(f"/v1/members/{cid}", headers=key(store, "marketer"))
        assert erased.status_code == 204, erased.text
        assert await runtime.redis.get(profile_cache.cache_key(store.store_id, cid)) is None
        assert (await client.get(f"/v1/members/{cid}", headers=key(store, "channel"))).status_code == 404
        data = (await client.get(f"/v1/members/{cid}/export", headers=key(store, "marketer"))).json()["data"]
        assert data["member"]["email"] is None
        assert data["member"]["first_name"] is None
        assert data["member"]["preferences"] == {}
        assert data["preference_changes"] == []
        assert data["ledger"][0]["points"] == 10
        assert len(data["orders"]) == 1
        assert (await client.delete(f"/v1/members/{cid}", headers=key(store, "marketer"))).status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(settings: Settings) -> Iterator[str]:
    """The app on a real HTTP server (uvicorn) in a thread: SSE needs a transport that streams."""
    uvicorn = pytest.importorskip("uvicorn")
    from plugin.app import create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.slow
async def test_sse_end_to_end_on_a_real_server(
    client: Client, store: StoreCreated, settings: Settings
) -> None:
    """Write through the in-test app, follow through another server process-alike: Redis carries it."""
    cid = await new_member(client, store, points=10)
    start = (await profile(client, cid, key(store, "channel")))["version"]
    with served(settings) as base_url:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=10) as remote,
            remote.stream("GET", f"/v1/members/{cid}/events", headers=key(store, "channel")) as stream,
        ):
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            async with asyncio.timeout(10):
                while (await anext(lines)) != f"id: {start}":
                    pass
                await set_tags(client, store, cid, "live")
                while not (line := await anext(lines)).startswith("data: {"):
                    pass
    assert f'"version":{start + 1}' in line
