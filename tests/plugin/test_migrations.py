"""Migrations: applied once, recorded, edits refused, and N replicas migrating together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from plugin import database, migrations
from plugin.migrations import MIGRATION_LOCK_ID, Migration, MigrationError, load_migrations, migrate

_RECORDED = "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"


@pytest.fixture
async def conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await database.connect(empty_database_url)
    yield conn
    await conn.close()


def with_extra(*extra: Migration) -> list[Migration]:
    return [*load_migrations(), *extra]


async def lock_is_free(conn: asyncpg.Connection) -> bool:
    """Whether another session could take the migration lock now (it is released again at once)."""
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_ID)
    if taken:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return taken


def test_files_load_in_order_with_unique_numbers() -> None:
    found = load_migrations()
    versions = [migration.version for migration in found]
    assert versions == sorted(set(versions))
    assert [(m.version, m.name) for m in found[:2]] == [(1, "stores"), (2, "jobs")]


async def test_applies_every_migration_once_and_records_it(conn: asyncpg.Connection) -> None:
    expected = load_migrations()
    applied = await migrate(conn)
    assert [m.version for m in applied] == [m.version for m in expected]
    recorded = await conn.fetch(_RECORDED)
    assert [(r["version"], r["name"], r["checksum"]) for r in recorded] == [
        (m.version, m.name, m.checksum) for m in expected
    ]
    for table in ("stores", "api_keys", "jobs"):
        assert await conn.fetchval("SELECT to_regclass($1)", table) is not None

    assert await migrate(conn) == []
    assert await conn.fetch(_RECORDED) == recorded
    assert await lock_is_free(conn)


async def test_only_a_new_migration_is_applied(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(conn)
    extra = Migration(version=9001, name="extra", sql="CREATE TABLE extra_thing (id integer)")
    monkeypatch.setattr(migrations, "load_migrations", lambda: with_extra(extra))
    assert await migrate(conn) == [extra]
    assert await conn.fetchval("SELECT to_regclass('extra_thing')") is not None


async def test_an_edited_applied_migration_is_refused(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(conn)
    first, *rest = load_migrations()
    edited = Migration(version=first.version, name=first.name, sql=first.sql + "\n-- an afterthought\n")
    pending = Migration(version=9001, name="extra", sql="CREATE TABLE extra_thing (id integer)")
    monkeypatch.setattr(migrations, "load_migrations", lambda: [edited, *rest, pending])
    with pytest.raises(MigrationError, match="0001_stores changed after it was applied"):
        await migrate(conn)
    assert await conn.fetchval("SELECT to_regclass('extra_thing')") is None
    assert await lock_is_free(conn)


async def test_a_failing_migration_leaves_no_trace(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Migration(version=9001, name="broken", sql="CREATE TABLE half_done (id integer); SELECT 1 / 0")
    monkeypatch.setattr(migrations, "load_migrations", lambda: with_extra(broken))
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(conn)
    assert await conn.fetchval("SELECT to_regclass('half_done')") is None
    assert 9001 not in {r["version"] for r in await conn.fetch(_RECORDED)}
    # What came before the broken one stays applied; the next run retries only the broken one.
    assert await conn.fetchval("SELECT to_regclass('jobs')") is not None
    assert await lock_is_free(conn)


async def test_replicas_migrating_together_apply_each_migration_once(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow migration keeps the first replica inside the lock while the others arrive and queue.
    slow = Migration(version=9001, name="slow", sql="SELECT pg_sleep(0.3)")
    monkeypatch.setattr(migrations, "load_migrations", lambda: with_extra(slow))
    replicas = await asyncio.gather(*(database.connect(empty_database_url) for _ in range(5)))
    try:
        results = await asyncio.gather(*(migrate(conn) for conn in replicas))
        versions = [[m.version for m in result] for result in results]
        assert sorted(versions, key=len) == [[], [], [], [], [m.version for m in with_extra(slow)]]
        counts = await replicas[0].fetch(
            "SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version"
        )
        assert [(r["version"], r["n"]) for r in counts] == [(m.version, 1) for m in with_extra(slow)]
    finally:
        await asyncio.gather(*(conn.close() for conn in replicas))
