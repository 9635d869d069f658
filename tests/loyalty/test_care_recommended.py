"""`recommended_next` fed by the recommender's precomputed `discover` lists in Redis."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import numpy as np

from loyalty import care
from loyalty.program import Program
from loyalty.stores import StoreCreated
from plugin.care_jobs import care_sources
from plugin.runtime import Runtime
from recommender import publishing, serving
from tests.loyalty.care_rows import actions, care_member, care_program, events
from tests.recommender import synthetic

NOON = datetime(2026, 6, 10, 10, tzinfo=UTC)


async def publish_lists(runtime: Runtime, store_id: str, members: list[str], k: int = 5) -> list[str]:
    """Each member's lists (`synthetic.top_lists`) live in Redis; returns the discover list's ids."""
    _, catalogue, _ = synthetic.as_arrays([])
    await publishing.publish(
        runtime.redis,
        store_id=store_id,
        version=1,
        top=synthetic.top_lists(members, k),
        catalogue=catalogue,
        popularity=np.ones(len(catalogue.product)),
        facts=None,
        k=k,
    )
    await serving.switch(runtime.redis, store_id=store_id, version=1)
    return [str(p) for p in catalogue.product[k : 2 * k]]


async def run(pool: asyncpg.Pool, runtime: Runtime, store_id: str, now: datetime, program: Program) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=store_id, now=now, program=program, sources=care_sources(runtime))


async def test_consenting_members_with_lists_get_their_discover_picks_once_a_month(
    pool: asyncpg.Pool, store: StoreCreated, runtime: Runtime
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        await care_member(conn, sid, "ann")
        await care_member(conn, sid, "bob", consent=False)
        await care_member(conn, sid, "cy")  # no list of their own: the store-wide popular row is no pick
        await care_member(conn, sid, "dee", birthday=date(1990, 6, 10))  # the birthday wins the scan
    products = await publish_lists(runtime, sid, ["ann", "bob", "dee"])
    program = care_program(
        {"kind": "birthday"}, {"kind": "recommended_next", "products": 2}, member_message_cap_days=3
    )
    await run(pool, runtime, sid, NOON, program)
    async with pool.acquire() as conn:
        assert await actions(conn, sid) == [
            ("ann", "recommended_next", "suggestion", "month-2026-06"),
            ("dee", "birthday", "suggestion", "2026"),
        ]
        payload = next(p for _, customer, p in await events(conn, sid) if customer == "ann")
    assert payload["product_ids"] == products[:2]
    assert payload["reason"] == f"members with similar taste bought: {products[0]}, {products[1]}"
    assert payload["kind"] == "recommended_next"

    await run(pool, runtime, sid, NOON + timedelta(days=1), program)  # dee is capped, ann has hers
    await run(pool, runtime, sid, NOON + timedelta(days=4), program)  # dee's cap is over
    await run(pool, runtime, sid, NOON + timedelta(days=10), program)  # nothing new this month
    await run(pool, runtime, sid, datetime(2026, 7, 1, 10, tzinfo=UTC), program)  # a new month
    async with pool.acquire() as conn:
        found = [(cid, trigger, period) for cid, trigger, _, period in await actions(conn, sid)]
    assert found == [
        ("ann", "recommended_next", "month-2026-06"),
        ("ann", "recommended_next", "month-2026-07"),
        ("dee", "birthday", "2026"),
        ("dee", "recommended_next", "month-2026-06"),
        ("dee", "recommended_next", "month-2026-07"),
    ]
