"""Care in the one profile: live suggestions shown, and never a stale list from the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from loyalty import care
from loyalty.program import Program
from loyalty.stores import StoreCreated
from plugin import profile_cache
from plugin.runtime import Runtime
from tests.loyalty.care_rows import care_member, care_program
from tests.service import key, profile

BERLIN = ZoneInfo("Europe/Berlin")


async def scan(pool: asyncpg.Pool, store_id: str, now: datetime, program: Program) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=store_id, now=now, program=program)


async def cached_valid_until(runtime: Runtime, store_id: str, customer_id: str) -> float | None:
    raw = await runtime.redis.get(profile_cache.cache_key(store_id, customer_id))
    assert raw is not None
    return profile_cache._decoder.decode(raw).valid_until


async def test_the_profile_shows_live_suggestions_until_dismissed_or_expired(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    store: StoreCreated,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sid, now, channel = store.store_id, datetime.now(UTC), key(store, "channel")
    async with pool.acquire() as conn:
        for cid in ("ann", "cy"):
            await care_member(conn, sid, cid, birthday=now.astimezone(BERLIN).date())
    before = await client.get("/v1/members/ann", headers=channel)
    assert before.json()["suggestions"] == []
    assert (await profile(client, "cy", channel))["suggestions"] == []

    await scan(pool, sid, now, care_program({"kind": "birthday", "gift": {"kind": "voucher", "value": 500}}))
    after = await client.get("/v1/members/ann", headers=channel)
    [shown] = after.json()["suggestions"]
    assert after.json()["version"] > before.json()["version"]
    assert after.headers["ETag"] != before.headers["ETag"]
    changes = await client.get(f"/v1/members/ann/changes?since={before.json()['version']}", headers=channel)
    assert [change["kinds"] for change in changes.json()["items"]] == [["care"]]
    assert (shown["kind"], shown["gift"]["value"]) == ("birthday", 500)
    assert shown["reason"].startswith("birthday on ")
    listed = (await client.get("/v1/members/ann/suggestions", headers=channel)).json()["items"]
    assert listed == [shown]

    dismissed = await client.post(
        f"/v1/members/ann/suggestions/{shown['suggestion_id']}/dismiss", headers=channel
    )
    assert dismissed.status_code == 204
    final = await profile(client, "ann", channel)
    assert final["suggestions"] == []
    assert final["version"] > after.json()["version"]

    # The cached entry holds until the suggestion expires, and no longer: no write is needed.
    [gift] = (await profile(client, "cy", channel))["suggestions"]
    expires_at = datetime.fromisoformat(gift["expires_at"])
    assert await cached_valid_until(runtime, sid, "cy") == expires_at.timestamp()
    monkeypatch.setattr(runtime, "clock", lambda: expires_at - timedelta(seconds=1))
    assert (await profile(client, "cy", channel))["suggestions"] == [gift]
    monkeypatch.setattr(runtime, "clock", lambda: expires_at)
    assert (await profile(client, "cy", channel))["suggestions"] == []


async def test_a_suggestion_held_by_the_quiet_hours_appears_when_they_end(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    store: StoreCreated,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sid, now, channel = store.store_id, datetime.now(UTC), key(store, "channel")
    local = now.astimezone(BERLIN)
    quiet = ((local - timedelta(hours=1)).strftime("%H:%M"), (local + timedelta(hours=1)).strftime("%H:%M"))
    async with pool.acquire() as conn:
        await care_member(conn, sid, "bob", birthday=(local + timedelta(days=1)).date())
    program = care_program({"kind": "birthday", "days_before": 1}, quiet=quiet)
    await scan(pool, sid, now, program)
    assert (await profile(client, "bob", channel))["suggestions"] == []
    deliver_after = await cached_valid_until(runtime, sid, "bob")
    assert deliver_after is not None
    assert 0 < deliver_after - now.timestamp() <= 3600
    monkeypatch.setattr(runtime, "clock", lambda: datetime.fromtimestamp(deliver_after, UTC))
    [shown] = (await profile(client, "bob", channel))["suggestions"]
    assert shown["kind"] == "birthday"
