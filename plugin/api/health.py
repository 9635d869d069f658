"""Liveness and readiness: PostgreSQL and Redis must answer."""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from plugin.auth import EXCLUDE_FROM_AUTH
from plugin.runtime import Runtime

CHECK_TIMEOUT = 2.0

ComponentStatus = Literal["ok", "down"]


class Health(msgspec.Struct, kw_only=True):
    """`ok` when every dependency answers, else `down` (and HTTP 503)."""

    status: Literal["ok", "down"]
    postgres: ComponentStatus
    redis: ComponentStatus


async def _postgres(runtime: Runtime) -> ComponentStatus:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), runtime.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except Exception:
        return "down"
    return "ok"


async def _redis(runtime: Runtime) -> ComponentStatus:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await runtime.redis.ping()
    except Exception:
        return "down"
    return "ok"


async def check(runtime: Runtime) -> Response[Health]:
    postgres, redis = await asyncio.gather(_postgres(runtime), _redis(runtime))
    ok = postgres == "ok" and redis == "ok"
    health = Health(status="ok" if ok else "down", postgres=postgres, redis=redis)
    return Response(health, status_code=200 if ok else 503)


DOWN = {503: ResponseSpec(Health, description="PostgreSQL or Redis does not answer", generate_examples=False)}


@get("/health", opt={EXCLUDE_FROM_AUTH: True}, responses=DOWN, tags=["operator"], summary="Health")
async def health(runtime: NamedDependency[Runtime]) -> Response[Health]:
    """200 when PostgreSQL and Redis answer, 503 otherwise."""
    return await check(runtime)


@get("/ready", opt={EXCLUDE_FROM_AUTH: True}, responses=DOWN, tags=["operator"], summary="Readiness")
async def ready(runtime: NamedDependency[Runtime]) -> Response[Health]:
    """Readiness for load balancers: the same checks as `/health`."""
    return await check(runtime)
