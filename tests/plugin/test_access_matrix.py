"""Every route, with every kind of credential, from the same store and another, against `access_table.TABLE`.

A cell is one request. The credential is tried from the store that owns what the request names (the
"home" store) and from another store; a member token acts for the member in the path or for another
one. The expected answer follows from the table alone:

- allowed: past every check (not 401, 403 or 404: the request may still be 409, 412, 422 …);
- 401: no credential the route knows, or a dead one (revoked, expired, forged, wrong scheme);
- 403: a live credential of a kind the route does not let in;
- 404: a credential let in, asking for what belongs to another store or another member, which must
  look exactly like something that does not exist.

Requests go straight to the ASGI app (one app and one set of stores for the whole matrix), which is
also how the server-sent events route is probed: its status is read and the connection dropped.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from hooks import outbox as hooks_outbox
from loyalty import care, member_tokens
from loyalty.repository import outbox
from loyalty.repository import stores as stores_repo
from loyalty.stores import Scope, StoreCreated
from tests.asgi import http_scope
from tests.conftest import ADMIN, ADMIN_TOKEN, bearer, make_store
from tests.events import signed_headers
from tests.hooks.platforms import hmac_b64
from tests.loyalty.care_rows import care_member, care_program, insert_lot
from tests.plugin.access_table import NEW_CASE, TABLE, Row, Who


class Kind(enum.StrEnum):
    # Not bound to a store: tried once per route.
    none = "no credential"
    wrong_scheme = "a marketer key under Basic"
    unknown_key = "an unknown key"
    revoked_key = "a revoked marketer key"
    expired_key = "an expired marketer key"
    expired_token = "an expired member token"
    forged_token = "a forged member token"
    operator = "the operator token"
    bad_signature = "a wrong webhook signature"
    # Bound to a store: tried from the home store and from another.
    storefront = "storefront key"
    marketer = "marketer key"
    channel = "channel key"
    app_key = "app key"
    member = "member token"
    other_member = "another member's token"
    signed = "webhook signature"


STORE_BOUND = (
    Kind.storefront,
    Kind.marketer,
    Kind.channel,
    Kind.app_key,
    Kind.member,
    Kind.other_member,
    Kind.signed,
)
ROLE = {
    Kind.storefront: Who.storefront,
    Kind.marketer: Who.marketer,
    Kind.channel: Who.channel,
    Kind.app_key: Who.app_key,
    Kind.member: Who.member,
    Kind.other_member: Who.member,
}
ALLOWED = "allowed"
HOME_MEMBER, OTHER_MEMBER, ERASED_MEMBER = "m-home", "m-other", "m-erased"


def expected(row: Row, kind: Kind, other_store: bool) -> str | int:
    """What the table says a cell answers."""
    if Who.public in row.who:
        return row.always or ALLOWED
    if Who.operator in row.who:
        return ALLOWED if kind is Kind.operator else 401
    if Who.signed in row.who:
        return ALLOWED if kind is Kind.signed and not other_store else 401
    role = ROLE.get(kind)
    if role is None:
        return 401
    if role not in row.who:
        return 403
    if not row.params:
        return ALLOWED  # the route acts on the caller's own store
    # Every path parameter of an API route names something of the home store's.
    if kind is Kind.other_member:
        return 404
    return row.unknown if other_store else ALLOWED


@dataclass
class Store:
    created: StoreCreated
    tokens: dict[str, str]
    """Member tokens by customer id, signed with this store's secret (the home store's ids)."""
    platform_secrets: dict[str, str]


@dataclass
class Seed:
    home: Store
    other: Store
    resources: dict[str, str]
    dead: dict[Kind, dict[str, str]]
    """Headers of the credentials bound to no store."""

    def path(self, template: str, row: Row) -> str:
        path = template
        for name, resource in row.params.items():
            path = path.replace(f"{{{name}:str}}", self.resources[resource])
        return path + (f"?{row.query}" if row.query else "")


def _member_token(store_id: str, secret: bytes, customer_id: str, *, ttl: float = 3600) -> str:
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    return member_tokens.sign(secret, store_id=store_id, customer_id=customer_id, expires_at=expires_at)


async def _store(client: httpx.AsyncClient, pool: asyncpg.Pool, name: str) -> Store:
    secrets = {"shopify": f"shpss_{name}", "woocommerce": f"wc_{name}"}
    created = await make_store(client, name=name, platform_secrets=secrets)
    async with pool.acquire() as conn:
        secret = await stores_repo.member_token_secret(conn, store_id=created.store_id)
    assert secret is not None
    tokens = {cid: _member_token(created.store_id, secret, cid) for cid in (HOME_MEMBER, OTHER_MEMBER)}
    return Store(created=created, tokens=tokens, platform_secrets=secrets)


async def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def _dead_keys(client: httpx.AsyncClient) -> tuple[str, str]:
    """(a revoked marketer key, an expired marketer key) of a store of their own."""
    dead = await make_store(client, name="Dead keys")
    admin = f"/v1/admin/stores/{dead.store_id}/keys"
    await _ok(await client.post(admin, json={"scope": "marketer", "grace_seconds": 0}, headers=ADMIN))
    rotated = await _ok(
        await client.post(admin, json={"scope": "marketer", "grace_seconds": 60}, headers=ADMIN)
    )
    await _ok(await client.delete(f"{admin}/{rotated['key_id']}", headers=ADMIN), 204)
    return rotated["api_key"], dead.api_keys[Scope.marketer]


async def _seed(client: httpx.AsyncClient, pool: asyncpg.Pool) -> Seed:
    home, other = await _store(client, pool, "home"), await _store(client, pool, "other")
    sid = home.created.store_id
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        for store in (home, other):
            for cid in (HOME_MEMBER, OTHER_MEMBER, ERASED_MEMBER):
                # The other store's members have ids of their own: none of the home store's exists there.
                await care_member(conn, store.created.store_id, cid if store is home else f"x-{cid}")
        await insert_lot(conn, sid, HOME_MEMBER, points=150, expires_at=now + timedelta(days=10))
        await care.scan(conn, store_id=sid, now=now, program=care_program({"kind": "points_expiring"}))
        suggestion = await conn.fetchval(
            "SELECT action_id::text FROM care_actions WHERE store_id = $1 AND customer_id = $2",
            sid,
            HOME_MEMBER,
        )
    channel = bearer(home.created.api_keys[Scope.channel])
    marketer = bearer(home.created.api_keys[Scope.marketer])
    case = await _ok(await client.post(f"/v1/members/{HOME_MEMBER}/cases", json=NEW_CASE, headers=channel))
    endpoint_body = {"url": "https://93.184.216.34/hooks", "events": ["points.changed"]}
    endpoints = [
        await _ok(await client.post("/v1/webhook-endpoints", json=endpoint_body, headers=marketer))
        for _ in range(2)
    ]
    async with pool.acquire() as conn:
        await outbox.emit(conn, store_id=sid, customer_id=HOME_MEMBER, event_type="points.changed", data={})
    await hooks_outbox.fan_out(pool)
    kept = f"/v1/deliveries?endpoint_id={endpoints[0]['endpoint_id']}"
    [delivery] = (await _ok(await client.get(kept, headers=marketer), 200))["items"]
    ops = await make_store(client, name="Operated")
    ops_key = await _ok(await client.get("/v1/me", headers=bearer(ops.api_keys[Scope.app])), 200)
    revoked, expired = await _dead_keys(client)
    token = home.tokens[HOME_MEMBER]
    payload, mac = token.removeprefix(member_tokens.PREFIX).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps(claims | {"c": OTHER_MEMBER}).encode()).decode().rstrip("=")
    async with pool.acquire() as conn:
        secret = await stores_repo.member_token_secret(conn, store_id=sid)
    assert secret is not None
    marketer_key = home.created.api_keys[Scope.marketer]
    return Seed(
        home=home,
        other=other,
        resources={
            "store": sid,
            "member": HOME_MEMBER,
            "erased_member": ERASED_MEMBER,
            "case": case["case_id"],
            "suggestion": suggestion,
            "endpoint": endpoints[0]["endpoint_id"],
            "doomed_endpoint": endpoints[1]["endpoint_id"],
            "delivery": delivery["delivery_id"],
            "ops_store": ops.store_id,
            "ops_key": ops_key["key_id"],
            "openapi_yaml": "openapi.yaml",
            "admin_asset": "app.js",
        },
        dead={
            Kind.none: {},
            Kind.wrong_scheme: {"Authorization": "Basic " + base64.b64encode(marketer_key.encode()).decode()},
            Kind.unknown_key: bearer("pk_marketer_" + "x" * 43),
            Kind.revoked_key: bearer(revoked),
            Kind.expired_key: bearer(expired),
            Kind.expired_token: bearer(_member_token(sid, secret, HOME_MEMBER, ttl=-60)),
            Kind.forged_token: bearer(f"{member_tokens.PREFIX}{forged}.{mac}"),
            Kind.operator: bearer(ADMIN_TOKEN),
            Kind.bad_signature: {
                "webhook-id": "msg_1",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1," + base64.b64encode(b"0" * 32).decode(),
                "X-Shopify-Hmac-Sha256": base64.b64encode(b"0" * 32).decode(),
                "X-Shopify-Topic": "shop/update",
                "X-WC-Webhook-Signature": base64.b64encode(b"0" * 32).decode(),
                "X-WC-Webhook-Topic": "coupon.created",
            },
        },
    )


def _signed(store: Store, template: str) -> tuple[dict[str, str], bytes]:
    """A webhook the platform of the route would send, signed with the store's secret."""
    if "/shopify/" in template:
        body = b"{}"
        key = store.platform_secrets["shopify"].encode()
        return {"X-Shopify-Hmac-Sha256": hmac_b64(key, body), "X-Shopify-Topic": "shop/update"}, body
    if "/woocommerce/" in template:
        body = b'{"id": 1}'
        key = store.platform_secrets["woocommerce"].encode()
        return {"X-WC-Webhook-Signature": hmac_b64(key, body), "X-WC-Webhook-Topic": "coupon.created"}, body
    customer = {"customer_id": "c-signed", "email": "c@example.com", "first_name": "C", "last_name": "S"}
    body = json.dumps({"type": "customer.upserted", "data": customer}).encode()
    return signed_headers(store.created.webhook_secret, body), body


@dataclass(frozen=True)
class Cell:
    method: str
    template: str
    kind: Kind
    other_store: bool

    def __str__(self) -> str:
        where = " from another store" if self.other_store else ""
        return f"{self.method} {self.template} with {self.kind.value}{where}"


def cells(table: dict[tuple[str, str], Row]) -> Iterator[Cell]:
    for method, template in table:
        for kind in Kind:
            for other_store in (False, True) if kind in STORE_BOUND else (False,):
                yield Cell(method, template, kind, other_store)


def request(seed: Seed, cell: Cell, row: Row) -> tuple[str, dict[str, str], bytes]:
    headers = dict(row.headers)
    body = b"" if row.json is None else json.dumps(row.json).encode()
    if body:
        headers["Content-Type"] = "application/json"
    store = seed.other if cell.other_store else seed.home
    if cell.kind is Kind.signed:
        signature, signed_body = _signed(store, cell.template)
        headers |= signature
        body = signed_body if Who.signed in row.who else body
    elif cell.kind is Kind.member:
        headers |= bearer(store.tokens[HOME_MEMBER])
    elif cell.kind is Kind.other_member:
        headers |= bearer(store.tokens[OTHER_MEMBER])
    elif cell.kind in ROLE:
        headers |= bearer(store.created.api_keys[Scope(cell.kind.name.removesuffix("_key"))])
    else:
        headers |= seed.dead[cell.kind]
    return seed.path(cell.template, row), headers, body


async def call(app: Litestar, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    """The status the app answers, read straight off ASGI; the connection is dropped after it, so a
    stream (server-sent events) does not hold the cell open."""
    scope = http_scope(
        method,
        path,
        [(b"host", b"patron.test")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        server="patron.test",
    )
    answered = asyncio.Event()
    status = 0
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answered.set()

    await app(scope, receive, send)  # type: ignore[arg-type]
    return status


def route_table(app: Litestar) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves, but Litestar's automatic OPTIONS."""
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in route.methods
        if method != "OPTIONS"
    }


def test_every_route_declares_who_may_call_it(app: Litestar) -> None:
    routes = route_table(app)
    assert routes - TABLE.keys() == set(), "a new route: add it to tests/plugin/access_table.py"
    assert TABLE.keys() - routes == set(), "a route is gone: remove it from tests/plugin/access_table.py"


@pytest.fixture
async def seed(client: httpx.AsyncClient, pool: asyncpg.Pool) -> AsyncIterator[Seed]:
    seeded = await _seed(client, pool)
    yield seeded
    # Delivery pumps of later tests claim across stores: leave them no endpoint to call.
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM webhook_endpoints WHERE store_id = $1", seeded.home.created.store_id)


async def test_every_cell_answers_as_the_table_says(app: Litestar, seed: Seed) -> None:
    planned = [
        (cell, expected(TABLE[cell.method, cell.template], cell.kind, cell.other_store))
        for cell in cells(TABLE)
    ]
    wrong: list[str] = []

    async def check(cell: Cell, expect: str | int) -> None:
        status = await call(app, cell.method, *request(seed, cell, TABLE[cell.method, cell.template]))
        if status in (401, 403, 404) if expect == ALLOWED else status != expect:
            wrong.append(f"{cell}: expected {expect}, got {status}")

    # Refusals change nothing, so they run first; cells let in may write (erase a member, delete an
    # endpoint) and run after them. Within each, 32 at a time.
    refused = [(cell, expect) for cell, expect in planned if expect != ALLOWED]
    allowed = [(cell, expect) for cell, expect in planned if expect == ALLOWED]
    for group in (refused, allowed):
        for start in range(0, len(group), 32):
            await asyncio.gather(*(check(cell, expect) for cell, expect in group[start : start + 32]))
    print(f"access matrix: {len(planned)} cells over {len(TABLE)} routes, {len(allowed)} let in")
    assert not wrong, f"{len(wrong)} of {len(planned)} cells:\n" + "\n".join(sorted(wrong))
