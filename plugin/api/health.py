"""Liveness and readiness: PostgreSQL must answer; without Redis, Patron runs degraded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from plugin.auth import EXCLUDE_FROM_AUTH
from plugin.runtime import Runtime

CHECK_TIMEOUT = 2.0

ComponentStatus = Literal["ok", "down"]
Status = Literal["ok", "degraded", "down"]


class Health(msgspec.Struct, kw_only=True):
    """`ok`: PostgreSQL and Redis answer. `degraded` (still 200): Redis does not, and Patron serves
    from PostgreSQL alone, slower but correct. `down` (503): PostgreSQL does not answer, and API
    calls and webhooks are answered 503 with Retry-After until it does."""

    status: Status
    postgres: ComponentStatus
    redis: ComponentStatus


async def _within(check: Callable[[], Awaitable[object]]) -> ComponentStatus:
    """Whether `check` succeeds within CHECK_TIMEOUT. The answer never waits longer, even where
    giving up takes a while (asyncpg tells the server of a cancelled query before it lets go of
    the connection): the check then finishes in the background."""
    task = asyncio.ensure_future(check())
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    finished, _ = await asyncio.wait({task}, timeout=CHECK_TIMEOUT)
    if not finished:
        task.cancel()
        return "down"
    return "ok" if not task.cancelled() and task.exception() is None else "down"


async def _postgres(runtime: Runtime) -> None:
    async with runtime.pool.acquire(timeout=CHECK_TIMEOUT) as conn:
        await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT)


async def check(runtime: Runtime) -> Response[Health]:
    postgres, redis = await asyncio.gather(
        _within(lambda: _postgres(runtime)), _within(lambda: runtime.redis.ping())
    )
    status: Status = "down" if postgres == "down" else "degraded" if redis == "down" else "ok"
    health = Health(status=status, postgres=postgres, redis=redis)
    return Response(health, status_code=503 if status == "down" else 200)


DOWN = {503: ResponseSpec(Health, description="PostgreSQL or Redis does not answer", generate_examples=False)}


@get("/health", opt={EXCLUDE_FROM_AUTH: True}, responses=DOWN, tags=["operator"], summary="Health")
async def health(runtime: NamedDependency[Runtime]) -> Response[Health]:
    """200 when PostgreSQL answers (`degraded` if Redis does not), 503 when it does not."""
    return await check(runtime)


@get("/ready", opt={EXCLUDE_FROM_AUTH: True}, responses=DOWN, tags=["operator"], summary="Readiness")
async def ready(runtime: NamedDependency[Runtime]) -> Response[Health]:
    """Readiness for load balancers: the same checks as `/health`. A replica without Redis stays
    ready: every replica shares that Redis, and each serves from PostgreSQL meanwhile."""
    return await check(runtime)
