"""What is measured: each scenario loads Patron and the bare baseline with requests doing the same work.

A scenario is a name, a request builder for Patron, one for the baseline app and, when it needs
data first, a `prepare` step. Builders return pre-encoded requests, cycled through by the load
generator, so a scenario that must not repeat itself (webhooks with unique event ids) builds many.
Adding one is a function or two here, a route in `baseline_app.py` if the baseline lacks one, and
an entry in SCENARIOS.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import msgspec
from redis.asyncio import Redis

from hooks.signing import sign
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
    database_url: str
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

# --- order_paid: signed webhook ingestion against one INSERT in a transaction --------------------------

ORDERS_PER_RUN_SET = 60_000
"""Distinct signed deliveries built per app: enough that no run replays one (a duplicate is cheaper)."""
CUSTOMERS = 5_000
# Signatures hold for 5 minutes either way: stamping every delivery 4 minutes ahead keeps the whole
# set valid for about 9 minutes after it is built, longer than a default `make bench` run.
STAMP_AHEAD_SECONDS = 240


def _order_bodies(count: int) -> list[tuple[str, bytes]]:
    bodies = []
    for n in range(count):
        order = {
            "order_id": f"bench-{n}-{secrets.token_hex(4)}",
            "customer": {"customer_id": f"c{n % CUSTOMERS}", "email": f"c{n % CUSTOMERS}@example.com"},
            "currency": "EUR",
            "subtotal": 4599,
            "total": 5499,
            "placed_at": "2026-11-20T10:00:00Z",
            "lines": [
                {"line_id": "1", "product_id": "p1", "category": "coffee", "quantity": 2, "unit_price": 1500},
                {"line_id": "2", "product_id": "p2", "category": "tea", "quantity": 1, "unit_price": 1599},
            ],
        }
        bodies.append(
            (f"evt_{n}_{secrets.token_hex(4)}", msgspec.json.encode({"type": "order.paid", "data": order}))
        )
    return bodies


def _signed_orders(context: BenchContext, count: int = ORDERS_PER_RUN_SET) -> list[bytes]:
    stamp = int(time.time()) + STAMP_AHEAD_SECONDS
    path = f"/v1/hooks/standard/{context.store.store_id}"
    secret = context.store.webhook_secret
    return [
        build_request(
            "POST",
            path,
            host=HOST_HEADER,
            headers={
                "Content-Type": "application/json",
                "webhook-id": event_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(secret, msg_id=event_id, timestamp=stamp, body=body),
            },
            body=body,
        )
        for event_id, body in _order_bodies(count)
    ]


async def _history(context: BenchContext, requests: Sequence[bytes]) -> None:
    """Give the store a past, as any store being measured has: `requests` (one order per customer)
    sent through Patron, then ANALYZE, as autovacuum does in a live database. Measured on a database
    minutes old instead, with no statistics yet, PostgreSQL keeps plans it made for empty tables."""
    pending = iter(requests)

    async def send() -> None:
        for request in pending:
            status, body = await fetch(context.patron.host, context.patron.port, request)
            if status != 200:
                raise RuntimeError(f"setting up the store's history: {status} {body!r}")

    async with asyncio.TaskGroup() as group:
        for _ in range(16):
            group.create_task(send())
    conn = await asyncpg.connect(context.database_url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _bare_inserts(bodies: Callable[[int], list[tuple[str, bytes]]]) -> Requests:
    """The baseline's requests for the same bodies: each kept by one INSERT."""

    def build(context: BenchContext) -> list[bytes]:
        return [
            build_request(
                "POST",
                "/insert",
                host=HOST_HEADER,
                headers={"Content-Type": "application/json", "webhook-id": event_id},
                body=body,
            )
            for event_id, body in bodies(ORDERS_PER_RUN_SET)
        ]

    return build


ORDER_PAID = Scenario(
    name="order_paid",
    description="a signed order.paid through POST /v1/hooks/standard (verify, inbox, member, order, "
    "lines, ledger, lot, tier pass, outbox) vs a bare route doing one INSERT in a transaction",
    patron=_signed_orders,
    baseline=_bare_inserts(_order_bodies),
    prepare=lambda context: _history(context, _signed_orders(context, CUSTOMERS)),
    target=0.5,
)

# --- shopify_paid: a Shopify orders/paid (HMAC, topic, mapping) against the same bare INSERT ----------

PLATFORM_SECRETS = {"shopify": "shpss_bench_" + "0" * 32}
_SHOPIFY_ORDER = json.loads(
    (Path(__file__).parents[1] / "hooks/fixtures/shopify/orders_paid.json").read_text()
)


def _shopify_bodies(count: int, first: int = 0) -> list[tuple[str, bytes]]:
    bodies = []
    for n in range(first, first + count):
        order = copy.deepcopy(_SHOPIFY_ORDER)
        order["id"] = 10_000_000 + n
        order["customer"]["id"] = 1_000 + n % CUSTOMERS
        for index, item in enumerate(order["line_items"]):
            item["id"] = (10_000_000 + n) * 10 + index
        bodies.append((f"{n}-{secrets.token_hex(4)}", json.dumps(order).encode()))
    return bodies


def _shopify_hmac(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _shopify_orders(context: BenchContext, count: int = ORDERS_PER_RUN_SET, first: int = 0) -> list[bytes]:
    path = f"/v1/hooks/shopify/{context.store.store_id}"
    key = PLATFORM_SECRETS["shopify"].encode()
    return [
        build_request(
            "POST",
            path,
            host=HOST_HEADER,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": "orders/paid",
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Webhook-Id": event_id,
                "X-Shopify-Hmac-Sha256": base64.b64encode(
                    hmac.new(key, body, hashlib.sha256).digest()
                ).decode(),
            },
            body=body,
        )
        for event_id, body in _shopify_bodies(count, first)
    ]


SHOPIFY_PAID = Scenario(
    name="shopify_paid",
    description="a Shopify orders/paid through POST /v1/hooks/shopify (HMAC, mapping, then as order_paid) "
    "vs a bare route doing one INSERT in a transaction",
    patron=_shopify_orders,
    baseline=_bare_inserts(_shopify_bodies),
    # Order ids past those of the measured set: none of its deliveries is a duplicate.
    prepare=lambda context: _history(context, _shopify_orders(context, CUSTOMERS, first=ORDERS_PER_RUN_SET)),
    target=0.5,
)

SCENARIOS = {scenario.name: scenario for scenario in [ME, ORDER_PAID, SHOPIFY_PAID]}
