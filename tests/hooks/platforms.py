"""Fixtures in the platforms' own formats, signed with their real algorithms, and senders."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec

from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import make_store

FIXTURES = Path(__file__).parent / "fixtures"

SHOPIFY_SECRET = "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"
# As WooCommerce keeps a secret typed with an ampersand (entity-encoded); it signs with "...&...".
WOO_SECRET_STORED = "Zk9&amp;q#2!vL<p>7"
WOO_SIGNING_KEY = b"Zk9&q#2!vL<p>7"

_ids = itertools.count(1)


def fixture(platform: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / platform / f"{name}.json").read_text())
    return data


def fixture_bytes(platform: str, name: str) -> bytes:
    return (FIXTURES / platform / f"{name}.json").read_bytes()


def hmac_b64(key: bytes, body: bytes) -> str:
    """What both platforms send: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def php_json(payload: Any) -> bytes:
    """JSON as WordPress's wp_json_encode writes it: compact, slashes and non-ASCII escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


async def make_platform_store(client: httpx.AsyncClient, **overrides: Any) -> StoreCreated:
    secrets = {"shopify": SHOPIFY_SECRET, "woocommerce": WOO_SECRET_STORED}
    return await make_store(client, platform_secrets=secrets, **overrides)


async def send_shopify(
    client: httpx.AsyncClient,
    store: StoreCreated,
    topic: str,
    body: bytes | dict[str, Any],
    *,
    event_id: str | None = None,
    secret: str = SHOPIFY_SECRET,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": hmac_b64(secret.encode(), raw),
        "X-Shopify-Shop-Domain": "roastery-nord.myshopify.com",
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Webhook-Id": f"b54557e4-bdd9-4b37-8a5f-bf7d70bc{next(_ids):04d}",
        "X-Shopify-Event-Id": event_id or f"98880550-7158-44d4-b7cd-2c97c8a0{next(_ids):04d}",
        "X-Shopify-Triggered-At": "2026-03-14T09:15:04.118Z",
    } | (headers or {})
    return await client.post(f"/v1/hooks/shopify/{store.store_id}", content=raw, headers=sent)


async def send_woo(
    client: httpx.AsyncClient,
    store: StoreCreated,
    topic: str,
    body: bytes | dict[str, Any],
    *,
    key: bytes = WOO_SIGNING_KEY,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else php_json(body)
    resource, _, event = topic.partition(".")
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.7.1 Hookshot (WordPress/6.7.2)",
        "X-WC-Webhook-Source": "https://shop.example/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": hmac_b64(key, raw),
        "X-WC-Webhook-ID": "12",
        "X-WC-Webhook-Delivery-ID": hashlib.md5(str(next(_ids)).encode()).hexdigest(),  # noqa: S324
    } | (headers or {})
    return await client.post(f"/v1/hooks/woocommerce/{store.store_id}", content=raw, headers=sent)


async def count(runtime: Runtime, table: str, store: StoreCreated) -> int:
    async with runtime.pool.acquire() as conn:
        sql = f"SELECT count(*) FROM {table} WHERE store_id = $1"  # noqa: S608
        return int(await conn.fetchval(sql, store.store_id))


async def row(runtime: Runtime, sql: str, *args: Any) -> dict[str, Any] | None:
    async with runtime.pool.acquire() as conn:
        found = await conn.fetchrow(sql, *args)
    return None if found is None else dict(found)


def decode(response: httpx.Response) -> Any:
    return msgspec.json.decode(response.content)
