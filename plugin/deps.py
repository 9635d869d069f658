"""Request dependencies: the runtime, and one transaction per request that commits only on success."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from loyalty.repository import Connection
from loyalty.stores import Principal
from plugin.runtime import Runtime


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.patron
    return runtime


# Litestar resolves dependencies of the same depth concurrently, in an anyio task group: two tasks
# per request for a handler taking `conn` and `runtime` side by side. Chained (runtime, then conn or
# principal) they resolve inline, which took about a tenth of the CPU of an ingested webhook.


async def provide_conn(runtime: NamedDependency[Runtime]) -> AsyncGenerator[Connection, None]:
    """A pooled connection inside a transaction; an exception in the handler rolls it back."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        yield conn


def provide_principal(request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> Principal:
    """The authenticated caller. `runtime` only orders it after the runtime (see above)."""
    del runtime
    principal: Principal = request.auth
    return principal


DEPENDENCIES = {
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "conn": Provide(provide_conn),
    "principal": Provide(provide_principal, sync_to_thread=False),
}
