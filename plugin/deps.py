"""Request dependencies: the runtime, and one transaction per request that commits only on success."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from loyalty.repository import Connection
from loyalty.stores import Principal
from plugin.runtime import Runtime


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.patron
    return runtime


async def provide_conn(state: State) -> AsyncGenerator[Connection, None]:
    """A pooled connection inside a transaction; an exception in the handler rolls it back."""
    runtime: Runtime = state.patron
    async with runtime.pool.acquire() as conn, conn.transaction():
        yield conn


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.auth
    return principal


DEPENDENCIES = {
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "conn": Provide(provide_conn),
    "principal": Provide(provide_principal, sync_to_thread=False),
}
