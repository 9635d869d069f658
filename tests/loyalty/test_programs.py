"""Program versions: the cached live program, compare-and-set publishing, version 0."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest

from loyalty import programs
from loyalty.errors import NotFound, PreconditionFailed
from loyalty.program import Points, Program, default_program
from loyalty.stores import StoreCreated

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def with_rate(rate: float) -> Program:
    return msgspec.structs.replace(default_program(), points=Points(per_currency_unit=rate))


async def test_live_program_is_cached_by_version(pool: asyncpg.Pool, store: StoreCreated) -> None:
    async with pool.acquire() as conn:
        first = await programs.live_program(conn, store_id=store.store_id)
        assert first.version == 1
        assert msgspec.structs.replace(first, version=None) == default_program()
        assert await programs.live_program(conn, store_id=store.store_id) is first
        async with conn.transaction():
            await programs.publish(
                conn, store_id=store.store_id, program=with_rate(2), expected_version=1, actor="t", now=NOW
            )
        second = await programs.live_program(conn, store_id=store.store_id)
    assert (second.version, second.points.per_currency_unit) == (2, 2.0)


async def test_a_rolled_back_version_never_comes_back_from_the_cache(
    pool: asyncpg.Pool, store: StoreCreated
) -> None:
    sid = store.store_id
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await programs.publish(
            conn, store_id=sid, program=with_rate(7), expected_version=1, actor="t", now=NOW
        )
        assert (await programs.live_program(conn, store_id=sid)).points.per_currency_unit == 7.0
        await transaction.rollback()
        async with conn.transaction():
            await programs.publish(
                conn, store_id=sid, program=with_rate(3), expected_version=1, actor="t", now=NOW
            )
        live = await programs.live_program(conn, store_id=sid)
    assert (live.version, live.points.per_currency_unit) == (2, 3.0)


async def test_publishing_on_a_stale_version_is_refused(pool: asyncpg.Pool, store: StoreCreated) -> None:
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(PreconditionFailed) as refused:
            await programs.publish(
                conn,
                store_id=store.store_id,
                program=default_program(),
                expected_version=0,
                actor="t",
                now=NOW,
            )
    assert refused.value.extra["current_version"] == 1


async def test_a_store_at_version_0_has_the_default_program(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO stores (store_id, name, currency, timezone, webhook_secret)
               VALUES ('st_v0', 'v0', 'EUR', 'UTC', 'whsec_x')"""
        )
        program = await programs.live_program(conn, store_id="st_v0")
        assert program == msgspec.structs.replace(default_program(), version=0)
        published = await programs.publish(
            conn, store_id="st_v0", program=default_program(), expected_version=0, actor="t", now=NOW
        )
        assert published.version == 1
        with pytest.raises(NotFound):
            await programs.live_program(conn, store_id="st_missing")
        await conn.execute("DELETE FROM stores WHERE store_id = 'st_v0'")
