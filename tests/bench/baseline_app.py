"""The bare baseline: plain Litestar on the same servers as Patron, with none of Patron's machinery.

No middleware, guards, dependencies or error handlers: what any Litestar app on this stack pays for
a request. Patron's figures are read against it. Routes are added here as scenarios need them (a bare
INSERT for webhook ingestion, say), each the least code that does the same I/O as the Patron route.

Started like Patron, as `--factory tests.bench.baseline_app:create_app`, with `PATRON_DATABASE_URL`
and `PATRON_REDIS_URL` in the environment.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import MediaType
from redis.asyncio import Redis

REDIS_GET_KEY = "patron:bench:baseline"
"""The key `GET /redis-get` answers with; the harness writes a JSON document there first."""


@get("/health")
async def health(state: State) -> dict[str, str]:
    """Answers once both servers do, like Patron's `/health`, so one readiness check serves both."""
    await state.redis.ping()
    async with state.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return {"status": "ok"}


@get("/redis-get")
async def redis_get(state: State) -> Response[bytes]:
    """One Redis GET, its value returned as the JSON body."""
    value = await state.redis.get(REDIS_GET_KEY)
    return Response(value or b"null", media_type=MediaType.JSON)


_CREATE_INBOX = """
CREATE TABLE IF NOT EXISTS bench_inbox (event_id text PRIMARY KEY, body jsonb NOT NULL,
                                        received_at timestamptz NOT NULL DEFAULT now())
"""


@post("/insert", status_code=200)
async def insert(request: Request[Any, Any, Any], state: State) -> dict[str, str]:
    """One INSERT in a transaction: the least a webhook receiver that keeps what it gets does."""
    body = await request.body()
    async with state.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO bench_inbox (event_id, body) VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
            request.headers.get("webhook-id", ""),
            body.decode(),
        )
    return {"status": "applied"}


def create_app() -> Litestar:
    database_url = os.environ["PATRON_DATABASE_URL"]
    redis_url = os.environ["PATRON_REDIS_URL"]

    @asynccontextmanager
    async def connections(app: Litestar) -> AsyncIterator[None]:
        # The same pool size as Patron's default, so database-bound scenarios compare like with like.
        app.state.pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
        app.state.redis = Redis.from_url(redis_url)
        async with app.state.pool.acquire() as conn:
            await conn.execute(_CREATE_INBOX)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    return Litestar(route_handlers=[health, redis_get, insert], lifespan=[connections])
