"""Factories for canonical events and a signed sender for the standard webhook."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import httpx
import msgspec

from hooks.signing import sign
from loyalty.stores import StoreCreated

_ids = itertools.count(1)


def make_customer(**overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": f"c{next(_ids)}",
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "birthday": None,
        "marketing_consent": True,
    } | overrides


def make_line(**overrides: Any) -> dict[str, Any]:
    return {
        "line_id": f"l{next(_ids)}",
        "product_id": "p1",
        "sku": "SKU-1",
        "title": "Coffee beans",
        "category": "coffee",
        "quantity": 1,
        "unit_price": 1000,
        "discount": 0,
    } | overrides


def make_order(**overrides: Any) -> dict[str, Any]:
    """An order.paid payload; `subtotal` defaults to the sum of its lines."""
    lines = overrides.pop("lines", None) or [make_line()]
    subtotal = sum(line["quantity"] * line["unit_price"] - line["discount"] for line in lines)
    return {
        "order_id": f"o{next(_ids)}",
        "customer": overrides.pop("customer", None) or make_customer(),
        "currency": "EUR",
        "subtotal": subtotal,
        "total": subtotal,
        "placed_at": "2026-11-20T10:00:00Z",
        "lines": lines,
    } | overrides


def signed_headers(
    secret: str, body: bytes, *, event_id: str | None = None, at: int | None = None
) -> dict[str, str]:
    msg_id = event_id or "msg_" + secrets.token_hex(8)
    timestamp = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id=msg_id, timestamp=timestamp, body=body),
        "content-type": "application/json",
    }


async def send(
    client: httpx.AsyncClient,
    store: StoreCreated,
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
) -> httpx.Response:
    body = msgspec.json.encode({"type": event_type, "data": data})
    headers = signed_headers(store.webhook_secret, body, event_id=event_id)
    return await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=headers)
