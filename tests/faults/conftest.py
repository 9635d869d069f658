"""An app of its own whose PostgreSQL and Redis sit behind proxies the test can cut or hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest
from litestar import Litestar

from plugin.app import create_app
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.conftest import scratch_database, serving
from tests.faults.proxy import Proxy, through, upstream_of


@dataclass
class Faulty:
    """The app, a client on it, and the proxies in front of its servers."""

    app: Litestar
    client: httpx.AsyncClient
    postgres: Proxy
    redis: Proxy

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.patron
        return runtime


@pytest.fixture(scope="session")
async def faulty_database_url(server_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A database apart from the run's: what runs on that one (the app's member change relay)
    must not stand in for what an app under test fails to do."""
    async with scratch_database(server_urls[0]) as url:
        yield url


@pytest.fixture
async def faulty(settings: Settings, faulty_database_url: str) -> AsyncIterator[Faulty]:
    assert settings.redis_url is not None
    async with Proxy(upstream_of(faulty_database_url)) as pg, Proxy(upstream_of(settings.redis_url)) as rd:
        proxied = msgspec.structs.replace(
            settings,
            database_url=through(faulty_database_url, pg.port),
            redis_url=through(settings.redis_url, rd.port),
            redis_timeout_seconds=0.5,
        )
        app = create_app(proxied)
        async with serving(app) as client:
            try:
                yield Faulty(app=app, client=client, postgres=pg, redis=rd)
            finally:
                # Shut down with the servers back, as a real process would after an outage.
                await pg.restore()
                await rd.restore()
