"""WooCommerce reconciliation against a small fake shop on 127.0.0.1 speaking the REST API v3."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hooks import reconcile
from hooks.reconcile import ReconcileError, Report
from loyalty.errors import NotFound
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.conftest import ADMIN, make_store
from tests.hooks.platforms import fixture, make_platform_store, php_json, send_woo
from tests.loyalty.test_orders import member_state

Client = httpx.AsyncClient
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
KEY, SECRET = "ck_2d4f6a8c0e1b3d5f7a9c", "cs_8e6c4a2f0d1b3e5c7a9f"


@dataclass
class FakeShop:
    """The orders a WooCommerce shop would list, and the requests it got."""

    url: str = ""
    orders: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    fail_with: int | None = None


def _handler(shop: FakeShop) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            shop.requests.append(query)
            if parts.path != "/wp-json/wc/v3/orders":
                return self._send(404, {"code": "rest_no_route"})
            if self.headers.get("Authorization") != expected:
                return self._send(401, {"code": "woocommerce_rest_cannot_view", "data": {"status": 401}})
            if shop.fail_with:
                return self._send(shop.fail_with, {"code": "internal_server_error"})
            per_page, page = int(query["per_page"][0]), int(query["page"][0])
            pages = max(1, -(-len(shop.orders) // per_page))
            chunk = shop.orders[(page - 1) * per_page : page * per_page]
            self._send(200, chunk, {"X-WP-Total": str(len(shop.orders)), "X-WP-TotalPages": str(pages)})

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = php_json(payload)
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    return Handler


@pytest.fixture
def fake_shop() -> Iterator[FakeShop]:
    shop = FakeShop()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(shop))
    shop.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield shop
    server.shutdown()
    server.server_close()
    thread.join()


def woo_order(order_id: int, customer_id: int = 17, **changes: Any) -> dict[str, Any]:
    payload = fixture("woocommerce", "order_completed") | {"id": order_id, "customer_id": customer_id}
    payload["line_items"] = [line | {"id": line["id"] + order_id * 10} for line in payload["line_items"]]
    return payload | changes


async def connect(client: Client, store: StoreCreated, shop: FakeShop) -> None:
    response = await client.put(
        f"/v1/admin/stores/{store.store_id}/platform-api/woocommerce",
        json={"site_url": shop.url + "/", "consumer_key": KEY, "consumer_secret": SECRET},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"site_url": shop.url + "/", "consumer_key": KEY}


async def run(runtime: Runtime, store: StoreCreated, **kwargs: Any) -> Report:
    return await reconcile.reconcile_woocommerce(
        runtime.pool.acquire, store_id=store.store_id, since=SINCE, now=runtime.clock, **kwargs
    )


class TestReconcile:
    async def test_missed_orders_are_credited_and_seen_ones_are_duplicates(
        self, client: Client, runtime: Runtime, fake_shop: FakeShop
    ) -> None:
        store = await make_platform_store(client)
        await connect(client, store, fake_shop)
        # The webhook for 5001 arrived; the ones for 5002-5004 were lost.
        assert (await send_woo(client, store, "order.created", woo_order(5001))).json() == {
            "status": "applied"
        }
        fake_shop.orders = [
            woo_order(5001),
            woo_order(5002),
            woo_order(5003, refunds=[{"id": 5010, "reason": "", "total": "-13.50"}]),
            woo_order(5004, customer_id=0),
            woo_order(5005, status="pending", date_paid_gmt=None),
        ]
        lines: list[str] = []
        report = await run(runtime, store, per_page=2, progress=lines.append)
        assert report == Report(orders=5, applied=2, duplicate=1, parked=0, ignored=2, failed=0)
        assert lines == ["page 1/3: 2 orders", "page 2/3: 4 orders", "page 3/3: 5 orders"]
        assert (await member_state(runtime, store, "17"))["balance"] == 36 * 3 - 13
        again = await run(runtime, store)
        assert again == Report(orders=5, duplicate=3, ignored=2)
        assert (await member_state(runtime, store, "17"))["balance"] == 95

    async def test_asks_for_orders_modified_since_in_gmt(
        self, client: Client, runtime: Runtime, fake_shop: FakeShop
    ) -> None:
        store = await make_platform_store(client)
        await connect(client, store, fake_shop)
        await run(runtime, store)
        (query,) = fake_shop.requests
        assert query["modified_after"] == ["2026-03-01T00:00:00"]
        assert query["dates_are_gmt"] == ["true"]
        assert (query["page"], query["per_page"]) == (["1"], ["100"])

    async def test_an_order_that_cannot_be_understood_does_not_stop_the_others(
        self, client: Client, runtime: Runtime, fake_shop: FakeShop
    ) -> None:
        store = await make_platform_store(client)
        await connect(client, store, fake_shop)
        fake_shop.orders = [woo_order(6001, currency="euro"), woo_order(6002)]
        report = await run(runtime, store)
        assert (report.failed, report.applied) == (1, 1)

    async def test_refused_credentials_or_a_failing_shop_are_errors(
        self, client: Client, runtime: Runtime, fake_shop: FakeShop
    ) -> None:
        store = await make_platform_store(client)
        response = await client.put(
            f"/v1/admin/stores/{store.store_id}/platform-api/woocommerce",
            json={"site_url": fake_shop.url, "consumer_key": KEY, "consumer_secret": "cs_wrong"},
            headers=ADMIN,
        )
        assert response.status_code == 200
        with pytest.raises(ReconcileError, match="401"):
            await run(runtime, store)
        await connect(client, store, fake_shop)
        fake_shop.fail_with = 500
        with pytest.raises(ReconcileError, match="500"):
            await run(runtime, store)

    async def test_needs_a_store_with_credentials(self, client: Client, runtime: Runtime) -> None:
        store = await make_store(client)
        with pytest.raises(ReconcileError, match="no WooCommerce REST credentials"):
            await run(runtime, store)
        with pytest.raises(NotFound):
            await reconcile.reconcile_woocommerce(
                runtime.pool.acquire, store_id="st_nope", since=SINCE, now=runtime.clock
            )

    async def test_credentials_are_operator_only_and_validated(self, client: Client) -> None:
        store = await make_store(client)
        url = f"/v1/admin/stores/{store.store_id}/platform-api/woocommerce"
        body = {"site_url": "https://shop.example", "consumer_key": KEY, "consumer_secret": SECRET}
        assert (await client.put(url, json=body)).status_code == 401
        bad = await client.put(url, json=body | {"site_url": "ftp://shop.example"}, headers=ADMIN)
        assert bad.status_code == 422
        missing = await client.put(
            "/v1/admin/stores/st_nope/platform-api/woocommerce", json=body, headers=ADMIN
        )
        assert missing.status_code == 404


async def test_the_command_line_reconciles(
    client: Client, runtime: Runtime, settings: Settings, fake_shop: FakeShop, tmp_path: Path
) -> None:
    store = await make_platform_store(client)
    await connect(client, store, fake_shop)
    fake_shop.orders = [woo_order(7001)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRON_") or k.startswith("PATRON_TEST_")}
    env |= {
        "PATRON_DATABASE_URL": settings.database_url or "",
        "PATRON_REDIS_URL": settings.redis_url or "",
        "PATRON_DATA_DIR": str(tmp_path),
        "PATRON_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "plugin.cli", "reconcile", "woocommerce"]
    command += ["--store", store.store_id, "--since", "2026-03-01T00:00:00Z"]
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "applied 1" in done.stdout
    assert "page 1/1: 1 orders" in done.stderr
    assert (await member_state(runtime, store, "17"))["balance"] == 36


def test_orders_page_fixture_is_the_rest_format() -> None:
    """The REST list is the webhook's order resource in an array: the fixtures serve both."""
    assert json.loads(php_json([woo_order(1)]))[0]["refunds"] == []
