"""Inbound webhooks from storefronts, authenticated by each platform's signature scheme.

Every route reads the raw body, checks its signature with the store's secret before parsing
anything (401 and nothing written on a bad one), translates the payload to canonical events and
receives them through the inbox in the request's one transaction.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal, ParamSpec, TypeVar

import msgspec
from litestar import Request, post
from litestar.datastructures import Headers
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, RawBody

from hooks import inbox, platforms, shopify, signing, woocommerce
from hooks.inbound import Ignored
from hooks.inbox import PaidDelivery
from loyalty.errors import NotFound
from loyalty.events import Event, MalformedEvent, OrderPaid, decode_envelope
from loyalty.repository import Connection
from loyalty.repository.stores import StoreRow
from plugin import metrics
from plugin.auth import webhook
from plugin.errors import problem_code
from plugin.openapi import webhook_operation
from plugin.request_bodies import WEBHOOK_MAX_BODY_BYTES
from plugin.runtime import Runtime

log = logging.getLogger(__name__)


class HookResult(msgspec.Struct, kw_only=True):
    """`applied`: the event took effect; `duplicate`: already seen, nothing changed; `parked`: it
    refers to an order not received yet and takes effect when that order arrives; `ignored`:
    understood and deliberately without effect (a topic Patron does not act on, a guest or unpaid
    order, WooCommerce's ping)."""

    status: Literal["applied", "duplicate", "parked", "ignored"]


_P = ParamSpec("_P")
T = TypeVar("T")


def _webhook(
    platform: str, summary: str
) -> Callable[[Callable[_P, Awaitable[HookResult]]], HTTPRouteHandler]:
    """The route of a platform's inbound webhooks, each delivery counted under the platform: its
    status, or the problem code it was rejected with."""

    def decorate(handler: Callable[_P, Awaitable[HookResult]]) -> HTTPRouteHandler:
        @functools.wraps(handler)
        async def counted(*args: _P.args, **kwargs: _P.kwargs) -> HookResult:
            try:
                result = await handler(*args, **kwargs)
            except Exception as exc:
                metrics.webhook_rejected(platform, problem_code(exc))
                raise
            metrics.webhook_received(platform, result.status)
            return result

        return post(
            f"/v1/hooks/{platform}/{{store_id:str}}",
            opt=webhook(platform),
            status_code=200,
            tags=["webhooks"],
            summary=summary,
            request_max_body_size=WEBHOOK_MAX_BODY_BYTES,
            operation_class=webhook_operation(platform),
        )(counted)

    return decorate


async def _known_store(
    conn: Connection, runtime: Runtime, store_id: str, *, fresh: bool = False
) -> tuple[StoreRow, bool]:
    """The store (kept a few seconds) and whether it came from the cache; NotFound for no store."""
    store, cached = await runtime.hook_stores.get(conn, store_id, fresh=fresh)
    if store is None:
        raise NotFound(f"no store {store_id}")
    return store, cached


async def _verified_store(
    runtime: Runtime, store_id: str, platform: platforms.Signer, check: Callable[[list[str]], T]
) -> tuple[StoreRow, T]:
    """The store and what `check` returned for its secret: the current one, then during a rotation
    the previous one. The common case, a kept row and its current secret, asks PostgreSQL nothing;
    a signature a kept row rejects is checked once more against the row as it is now (it may predate
    a rotation)."""
    kept = runtime.hook_stores.cached(store_id)
    if kept is not None:
        with contextlib.suppress(signing.InvalidSignature):
            return kept, platforms.check_current(kept, platform, check)
    async with runtime.pool.acquire() as conn:
        store, _ = await _known_store(conn, runtime, store_id, fresh=kept is not None)
        now = runtime.clock()
        return store, await platforms.verify(conn, store=store, platform=platform, check=check, now=now)


async def _platform_delivery(
    runtime: Runtime,
    store_id: str,
    platform: platforms.Platform,
    check: Callable[[list[str]], object],
    headers: Headers,
    topic_header: str,
) -> tuple[StoreRow, str]:
    """The store of a Shopify or WooCommerce delivery whose signature `check` accepts, and the
    topic the delivery names."""
    store, _ = await _verified_store(runtime, store_id, platform, check)
    topic = headers.get(topic_header)
    if not topic:
        raise MalformedEvent(f"the {topic_header} header is required")
    return store, topic


async def _receive(
    runtime: Runtime,
    *,
    store: StoreRow,
    source: str,
    event_id: str,
    event_type: str,
    event: Event,
    delivery_id: str | None = None,
) -> inbox.Status:
    """Apply one event: a paid order with the deliveries arriving beside it (`PaidOrderBatches`),
    anything else in a transaction of its own."""
    now = runtime.clock()
    if isinstance(event, OrderPaid):
        delivery = PaidDelivery(source, event_id, event_type, event, delivery_id)
        return await runtime.paid_orders.receive(store=store, delivery=delivery, now=now)
    async with runtime.pool.acquire() as conn, conn.transaction():
        return await inbox.receive(
            conn,
            store=store,
            source=source,
            event_id=event_id,
            event_type=event_type,
            event=event,
            now=now,
            delivery_id=delivery_id,
        )


@_webhook("standard", summary="Standard Webhooks inbound events")
async def standard(
    request: Request[Any, Any, Any], body: RawBody, store_id: FromPath[str], runtime: NamedDependency[Runtime]
) -> HookResult:
    """Canonical events (`order.paid`, `order.refunded`, `order.cancelled`, `customer.upserted`,
    `product.upserted`) signed as Standard Webhooks with the store's `whsec_` secret. The signature
    is checked before the body is parsed; a bad one is 401 and nothing is written."""
    now = runtime.clock().timestamp()
    store, event_id = await _verified_store(
        runtime,
        store_id,
        "standard",
        lambda secrets: signing.verify(secrets[0], headers=request.headers, body=body, now=now),
    )
    event_type, event = decode_envelope(body)
    status = await _receive(
        runtime, store=store, source="standard", event_id=event_id, event_type=event_type, event=event
    )
    return HookResult(status=status)


@_webhook("shopify", summary="Shopify webhooks")
async def shopify_hook(
    request: Request[Any, Any, Any], body: RawBody, store_id: FromPath[str], runtime: NamedDependency[Runtime]
) -> HookResult:
    """Shopify's `orders/paid`, `orders/cancelled`, `refunds/create`, `customers/create|update` and
    `products/create|update`, verified by `X-Shopify-Hmac-Sha256` with the store's Shopify secret.
    Deduplicated by `X-Shopify-Event-Id` with `X-Shopify-Topic`; an order is credited once however
    often it is announced. Other topics are acknowledged and ignored."""
    headers = request.headers
    signature = headers.get(shopify.SIGNATURE_HEADER)
    store, topic = await _platform_delivery(
        runtime,
        store_id,
        "shopify",
        lambda secrets: shopify.verify(secrets, body=body, signature=signature),
        headers,
        shopify.TOPIC_HEADER,
    )
    key, delivery_id = shopify.inbox_key(headers, body)
    translated = shopify.translate(topic, body, store_currency=store.currency)
    if isinstance(translated, Ignored):
        log.info("shopify %s for store %s ignored: %s", topic, store_id, translated.reason)
        if topic not in shopify.TOPICS:
            return HookResult(status="ignored")
        async with runtime.pool.acquire() as conn, conn.transaction():
            status = await inbox.ignore(
                conn, store=store, source="shopify", event_id=key, event_type=topic, delivery_id=delivery_id
            )
        return HookResult(status=status)
    status = await _receive(
        runtime,
        store=store,
        source="shopify",
        event_id=key,
        event_type=translated.event_type,
        event=translated.event,
        delivery_id=delivery_id,
    )
    return HookResult(status=status)


@_webhook("woocommerce", summary="WooCommerce webhooks")
async def woocommerce_hook(
    request: Request[Any, Any, Any], body: RawBody, store_id: FromPath[str], runtime: NamedDependency[Runtime]
) -> HookResult:
    """WooCommerce's `order.created|updated`, `customer.created|updated` and
    `product.created|updated`, verified by `X-WC-Webhook-Signature` with the store's WooCommerce
    secret. Payloads are snapshots: an order is paid once (`processing` or `completed`), refunded
    once per refund in its `refunds`, cancelled once, whichever deliveries carry them. The ping
    WooCommerce sends when a webhook is saved is answered 200."""
    headers = request.headers
    if woocommerce.is_ping(headers, body):
        async with runtime.pool.acquire() as conn:
            await _known_store(conn, runtime, store_id)
        return HookResult(status="ignored")
    signature = headers.get(woocommerce.SIGNATURE_HEADER)
    store, topic = await _platform_delivery(
        runtime,
        store_id,
        "woocommerce",
        lambda secrets: woocommerce.verify(secrets, body=body, signature=signature),
        headers,
        woocommerce.TOPIC_HEADER,
    )
    translated = woocommerce.translate(topic, body, store_currency=store.currency)
    if isinstance(translated, Ignored):
        # No inbox row: a snapshot that implies nothing has no fact to key it by.
        log.info("woocommerce %s for store %s ignored: %s", topic, store_id, translated.reason)
        return HookResult(status="ignored")
    delivery_id = headers.get(woocommerce.DELIVERY_ID_HEADER)
    if len(translated) == 1:
        (only,) = translated
        status = await _receive(
            runtime,
            store=store,
            source="woocommerce",
            event_id=only.key,
            event_type=only.event_type,
            event=only.event,
            delivery_id=delivery_id,
        )
        return HookResult(status=status)
    async with runtime.pool.acquire() as conn, conn.transaction():
        status = await inbox.receive_all(
            conn,
            store=store,
            source="woocommerce",
            events=translated,
            now=runtime.clock(),
            delivery_id=delivery_id,
        )
    return HookResult(status=status)
