"""`service_recovery` over real service cases: a complaint handled turns into a gift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from loyalty import care
from loyalty.stores import StoreCreated
from tests.loyalty.care_rows import actions, care_program, events
from tests.members import new_member
from tests.plugin.test_api_cases import event, open_case
from tests.service import key

GIFT = {"kind": "voucher", "value": 1000}


async def test_a_resolved_high_priority_case_earns_a_gift_even_without_consent(
    client: httpx.AsyncClient, store: StoreCreated, pool: asyncpg.Pool
) -> None:
    cid = await new_member(client, store, points=10)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE members SET marketing_consent = false WHERE store_id = $1 AND customer_id = $2",
            store.store_id,
            cid,
        )
    high = await open_case(client, cid, key(store, "channel"), priority="high")
    low = await open_case(client, cid, key(store, "channel"), priority="low")
    for case in (high, low):
        resolved = await event(client, case["case_id"], store, kind="status", status="resolved")
        assert resolved.status_code == 201, resolved.text
    program = care_program({"kind": "service_recovery", "gift": GIFT})
    later = datetime.now(UTC) + timedelta(minutes=1)
    async with pool.acquire() as conn, conn.transaction():
        await care.scan(conn, store_id=store.store_id, now=later, program=program)
    async with pool.acquire() as conn:
        assert await actions(conn, store.store_id) == [
            (cid, "service_recovery", "gift", f"case-{high['case_id']}")
        ]
        [(event_type, customer_id, payload)] = await events(conn, store.store_id)
    assert (event_type, customer_id) == ("gift.triggered", cid)
    assert high["case_id"] in str(payload)
