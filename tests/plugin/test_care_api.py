"""Care over HTTP: a member's suggestions, dismissing them, the report; the job and the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest

from loyalty import care
from loyalty.program import encode
from loyalty.stores import Scope, StoreCreated
from plugin import care_jobs
from plugin.cli import main
from plugin.jobs import JOB_HANDLERS, SCHEDULES
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from tests.conftest import bearer
from tests.loyalty.care_rows import actions, care_member, care_program, insert_lot
from tests.sql_rows import insert_order


def key(store: StoreCreated, scope: Scope) -> dict[str, str]:
    return bearer(store.api_keys[scope])


async def publish(client: httpx.AsyncClient, store: StoreCreated, *triggers: dict[str, object]) -> None:
    response = await client.get("/v1/program", headers=key(store, Scope.marketer))
    program = care_program(*triggers)
    put = await client.put(
        "/v1/program",
        content=encode(program),
        headers=key(store, Scope.marketer)
        | {"If-Match": response.headers["ETag"], "Content-Type": "application/json"},
    )
    assert put.status_code == 200, put.text


async def test_suggestions_are_listed_until_dismissed(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid, now = store.store_id, datetime.now(UTC)
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann")
        await care_member(conn, sid, "bob")
        await insert_lot(conn, sid, "ann", points=150, expires_at=now + timedelta(days=10))
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=sid, now=now, program=care_program({"kind": "points_expiring"}))

    response = await client.get("/v1/members/ann/suggestions", headers=key(store, Scope.channel))
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["kind"] == "points_expiring"
    assert item["product_ids"] == []
    assert item["reason"].startswith("150 points expire from")
    assert set(item) >= {"suggestion_id", "kind", "product_ids", "reason", "expires_at"}

    token = await client.post("/v1/members/ann/tokens", headers=key(store, Scope.storefront))
    as_ann = bearer(token.json()["token"])
    assert (await client.get("/v1/members/ann/suggestions", headers=as_ann)).json()["items"] == [item]
    assert (await client.get("/v1/members/bob/suggestions", headers=as_ann)).status_code == 404
    assert (
        await client.get("/v1/members/nobody/suggestions", headers=key(store, Scope.marketer))
    ).status_code == 404
    assert (
        await client.get("/v1/members/ann/suggestions", headers=key(store, Scope.storefront))
    ).status_code == 403

    url = f"/v1/members/ann/suggestions/{item['suggestion_id']}/dismiss"
    assert (await client.post(url, headers=key(store, Scope.app))).status_code == 403  # an app key, no member
    assert (await client.post(url, headers=as_ann)).status_code == 204
    assert (await client.post(url, headers=as_ann)).status_code == 204
    assert (await client.post("/v1/members/ann/suggestions/999999/acted", headers=as_ann)).status_code == 404
    assert (await client.get("/v1/members/ann/suggestions", headers=as_ann)).json()["items"] == []


async def test_report_counts_sent_budget_and_conversion(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid, now = store.store_id, datetime.now(UTC)
    await publish(client, store, {"kind": "birthday", "gift": {"kind": "voucher", "value": 700}})
    today = now.astimezone(care.ZoneInfo("Europe/Berlin")).date()
    async with pool.acquire() as conn:
        for cid in ("ann", "bob"):
            await care_member(conn, sid, cid, birthday=date(1990, today.month, min(today.day, 28)))
    birthday_now = now if today.day <= 28 else now - timedelta(days=today.day - 28)
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=sid, now=birthday_now)
        await insert_order(conn, sid, "ann", subtotal=3000, placed_at=birthday_now + timedelta(minutes=5))
    async with pool.acquire() as conn, conn.transaction():
        result = await care.scan(conn, store_id=sid, now=birthday_now + timedelta(hours=1))
        linked = await conn.fetch("SELECT customer_id, order_id FROM care_actions WHERE store_id = $1", sid)
    assert result.attributed == 1
    assert sorted((r["customer_id"], r["order_id"] is not None) for r in linked) == [
        ("ann", True),
        ("bob", False),
    ]

    month = birthday_now.astimezone(care.ZoneInfo("Europe/Berlin")).strftime("%Y-%m")
    response = await client.get(f"/v1/care/report?month={month}", headers=key(store, Scope.marketer))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["budget"] == 100_000
    assert body["budget_used"] == 1400
    assert body["triggers"] == [
        {"trigger": "birthday", "kind": "gift", "sent": 2, "cost": 1400, "converted": 1, "conversion": 0.5}
    ]
    assert (await client.get("/v1/care/report", headers=key(store, Scope.channel))).status_code == 403
    assert (
        await client.get("/v1/care/report?month=2026-13", headers=key(store, Scope.marketer))
    ).status_code == 422


async def test_export_lists_care_actions_and_erasure_blanks_their_words(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid, now = store.store_id, datetime.now(UTC)
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann", birthday=now.astimezone(care.ZoneInfo("Europe/Berlin")).date())
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=sid, now=now, program=care_program({"kind": "birthday"}))
    export = await client.get("/v1/members/ann/export", headers=key(store, Scope.marketer))
    [action] = export.json()["data"]["care_actions"]
    assert (action["trigger"], action["message"]) == ("birthday", "Happy birthday, Ann!")
    assert (await client.delete("/v1/members/ann", headers=key(store, Scope.marketer))).status_code == 204
    export = await client.get("/v1/members/ann/export", headers=key(store, Scope.marketer))
    [erased] = export.json()["data"]["care_actions"]
    assert (erased["trigger"], erased["reason"], erased["message"]) == ("birthday", "[erased]", "[erased]")


@pytest.fixture
def patron_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, server_urls: tuple[str, str]
) -> Iterator[None]:
    """Point the CLI at the test servers; put the root logger back as main() found it."""
    for name in os.environ:
        if name.startswith("PATRON_") and not name.startswith("PATRON_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATRON_DATABASE_URL", database_url)
    monkeypatch.setenv("PATRON_REDIS_URL", server_urls[1])
    monkeypatch.setenv("PATRON_LOG_LEVEL", "WARNING")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def job(store_id: str | None) -> Job:
    return Job(job_id=0, kind=care_jobs.KIND, store_id=store_id, payload={}, attempts=1, max_attempts=5)


async def test_the_hourly_job_fans_out_and_scans(
    client: httpx.AsyncClient, runtime: Runtime, pool: asyncpg.Pool, store: StoreCreated
) -> None:
    assert JOB_HANDLERS[care_jobs.KIND] is care_jobs.run_care_scan
    assert care_jobs.SCHEDULE in SCHEDULES
    sid, now = store.store_id, datetime(2026, 6, 10, 10, tzinfo=UTC)
    await publish(client, store, {"kind": "birthday"})
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann", birthday=date(1990, 6, 10))
    worker = dataclasses.replace(runtime, pool=pool, clock=lambda: now)
    prefix = f"{care_jobs.KIND}:2026-06-10T10:"
    try:
        await care_jobs.run_care_scan(worker, job(None))
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM jobs WHERE dedupe_key = $1", prefix + sid) == 1
        await care_jobs.run_care_scan(worker, job(sid))
        async with pool.acquire() as conn:
            assert await actions(conn, sid) == [("ann", "birthday", "suggestion", "2026")]
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM jobs WHERE dedupe_key LIKE $1", prefix + "%")


@pytest.mark.usefixtures("patron_env")
async def test_patron_care_run_as_of_another_time(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: StoreCreated, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = store.store_id
    await publish(client, store, {"kind": "birthday", "gift": {"kind": "voucher", "value": 500}})
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann", birthday=date(1990, 2, 3))
    argv = ["care", "run", "--store", sid, "--now", "2027-02-03T09:00:00"]
    assert await asyncio.to_thread(main, argv) == 0
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out.splitlines()
    first = "birthday 1; gift cost 500; deferred emitted 0; attributed 0"
    assert out[0] == f"{sid} as of 2027-02-03T09:00:00+00:00: {first}"
    assert out[1].startswith(f"{sid} as of 2027-02-03T09:00:00+00:00: no actions")
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [("ann", "birthday", "gift", "2027")]
    assert await asyncio.to_thread(main, ["care", "run", "--store", "nope"]) == 1
