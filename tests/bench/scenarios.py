"""What is measured: each scenario loads Patron and the bare baseline with requests doing the same work.

A scenario is a name, a request builder for Patron, one for the baseline app and, when it needs
data first, a `prepare` step. Builders return pre-encoded requests, cycled through by the load
generator, so a scenario that must not repeat itself (webhooks with unique event ids) builds many.
Adding one is a function or two here, a route in `baseline_app.py` if the baseline lacks one, and
an entry in SCENARIOS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from loyalty.stores import Scope, StoreCreated
from tests.bench import baseline_app
from tests.bench.loadgen import build_request, fetch
from tests.bench.servers import RunningServer

HOST_HEADER = "127.0.0.1"


@dataclass
class BenchContext:
    """What builders and `prepare` steps can use: a store made through the admin API, a running
    Patron for set-up calls, and Redis (keys written through `set_redis` are deleted at the end)."""

    store: StoreCreated
    patron: RunningServer
    redis: Redis
    written_keys: list[str] = field(default_factory=list)

    async def set_redis(self, key: str, value: bytes) -> None:
        await self.redis.set(key, value)
        self.written_keys.append(key)

    def bearer(self, scope: Scope) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.store.api_keys[scope]}"}


Requests = Callable[[BenchContext], Sequence[bytes]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    patron: Requests
    baseline: Requests
    prepare: Callable[[BenchContext], Awaitable[None]] | None = None
    target: float | None = None
    """The least Patron/baseline throughput ratio the scenario should reach."""


# --- me: an authenticated trivial endpoint against one Redis GET -------------------------------------


def _me_request(context: BenchContext) -> bytes:
    return build_request("GET", "/v1/me", host=HOST_HEADER, headers=context.bearer(Scope.app))


async def _me_prepare(context: BenchContext) -> None:
    # The baseline answers with the very bytes Patron answers /v1/me with: the same response size.
    patron = context.patron
    status, body = await fetch(patron.host, patron.port, _me_request(context))
    if status != 200:
        raise RuntimeError(f"GET /v1/me with the store's app key answered {status}: {body!r}")
    await context.set_redis(baseline_app.REDIS_GET_KEY, body)


ME = Scenario(
    name="me",
    description="GET /v1/me with an API key (cached in-process) vs a bare Litestar route doing one Redis GET",
    patron=lambda context: [_me_request(context)],
    baseline=lambda context: [
        # The same headers as Patron's request, so both parse the same bytes.
        build_request("GET", "/redis-get", host=HOST_HEADER, headers=context.bearer(Scope.app))
    ],
    prepare=_me_prepare,
    target=0.8,
)

SCENARIOS = {scenario.name: scenario for scenario in [ME]}
