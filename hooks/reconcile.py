"""Reconciliation: pull recent orders through WooCommerce's REST API and receive them as webhooks.

WooCommerce never retries a delivery, so an order whose webhook was lost (Patron down, a network
fault) would never be credited. `patron reconcile woocommerce --store S --since T` reads every
order modified since T (`GET /wp-json/wc/v3/orders?modified_after=...`) and passes each through
the same mapping and inbox keys as the webhook: what already arrived is a duplicate, what was
missed takes effect. Safe to run as often as wanted, e.g. hourly over the last day.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import httpx
import msgspec

from hooks import inbox, platforms, woocommerce
from hooks.inbound import Ignored
from hooks.platforms import WooCommerceApi
from loyalty.errors import NotFound, PatronError
from loyalty.repository import Connection
from loyalty.repository import stores as stores_repo

log = logging.getLogger(__name__)

Acquire = Callable[[], AbstractAsyncContextManager[Connection]]


class ReconcileError(PatronError):
    status_code = 502
    code = "reconcile-failed"
    title = "Reconciliation failed"


class Report(msgspec.Struct, kw_only=True):
    """What a reconciliation run found, by outcome per order."""

    orders: int = 0
    applied: int = 0
    duplicate: int = 0
    parked: int = 0
    ignored: int = 0
    failed: int = 0


_page = msgspec.json.Decoder(list[msgspec.Raw])


async def woocommerce_pages(
    client: httpx.AsyncClient, api: WooCommerceApi, *, since: datetime, per_page: int = 100
) -> AsyncIterator[tuple[int, int, list[msgspec.Raw]]]:
    """(page, pages in all, raw orders) for every order modified since `since`, oldest id first."""
    url = api.site_url.rstrip("/") + "/wp-json/wc/v3/orders"
    params: dict[str, str | int] = {
        "modified_after": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "dates_are_gmt": "true",
        "orderby": "id",
        "order": "asc",
        "per_page": per_page,
    }
    page = 1
    while True:
        try:
            response = await client.get(
                url, params=params | {"page": page}, auth=(api.consumer_key, api.consumer_secret)
            )
        except httpx.HTTPError as exc:
            raise ReconcileError(f"GET {url} failed: {exc}") from None
        if response.status_code != 200:
            raise ReconcileError(
                f"GET {url} page {page} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            orders = _page.decode(response.content)
        except msgspec.MsgspecError as exc:
            raise ReconcileError(f"GET {url} page {page} is not a list of orders: {exc}") from None
        pages = int(response.headers.get("X-WP-TotalPages") or page)
        yield page, pages, orders
        if not orders or page >= pages:
            return
        page += 1


async def reconcile_woocommerce(
    acquire: Acquire,
    *,
    store_id: str,
    since: datetime,
    now: Callable[[], datetime],
    per_page: int = 100,
    progress: Callable[[str], None] | None = None,
    client: httpx.AsyncClient | None = None,
) -> Report:
    """Receive every order modified since `since`, one transaction per order.

    An order that cannot be understood is counted as failed and logged; the others go on.
    Raises `NotFound` for an unknown store, `ReconcileError` without credentials or when the shop
    does not answer.
    """
    async with acquire() as conn:
        store = await stores_repo.get_store(conn, store_id=store_id)
        if store is None:
            raise NotFound(f"no store {store_id}")
        api = await platforms.woocommerce_api(conn, store_id=store_id)
    if api is None:
        raise ReconcileError(f"store {store_id} has no WooCommerce REST credentials")
    report = Report()
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=30, follow_redirects=True)
    try:
        async for page, pages, orders in woocommerce_pages(http, api, since=since, per_page=per_page):
            for raw in orders:
                report.orders += 1
                try:
                    async with acquire() as conn, conn.transaction():
                        status = await _receive(conn, raw, store=store, now=now())
                except PatronError as exc:
                    report.failed += 1
                    log.warning("woocommerce order not reconciled in store %s: %s", store_id, exc.detail)
                    continue
                setattr(report, status, getattr(report, status) + 1)
            if progress is not None:
                progress(f"page {page}/{pages}: {report.orders} orders")
    finally:
        if own_client:
            await http.aclose()
    return report


async def _receive(
    conn: Connection, raw: msgspec.Raw, *, store: stores_repo.StoreRow, now: datetime
) -> inbox.Status:
    events = woocommerce.order_events(woocommerce.decode_order(raw))
    if isinstance(events, Ignored):
        return "ignored"
    return await inbox.receive_all(conn, store=store, source="woocommerce", events=events, now=now)
