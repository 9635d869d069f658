"""WooCommerce webhooks: the pure mapping from WooCommerce's snapshots, then the route end to end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hooks import woocommerce
from hooks.inbound import Ignored, Inbound
from loyalty.errors import InvalidInput
from loyalty.events import Customer, OrderCancelled, OrderPaid, OrderRefunded, ProductUpserted
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import ADMIN
from tests.hooks.platforms import (
    WOO_SECRET_STORED,
    WOO_SIGNING_KEY,
    count,
    fixture,
    hmac_b64,
    make_platform_store,
    php_json,
    row,
    send_woo,
)
from tests.loyalty.test_orders import member_state

Client = httpx.AsyncClient


def order(name: str = "order_processing", **changes: Any) -> dict[str, Any]:
    return fixture("woocommerce", name) | changes


def events(payload: dict[str, Any], topic: str = "order.updated") -> list[Inbound]:
    result = woocommerce.translate(topic, php_json(payload), store_currency="EUR")
    assert not isinstance(result, Ignored), result
    return result


def keys(payload: dict[str, Any]) -> list[str]:
    return [inbound.key for inbound in events(payload)]


class TestSecret:
    @pytest.mark.parametrize(
        ("stored", "key"),
        [
            ("plain-secret", b"plain-secret"),
            (WOO_SECRET_STORED, WOO_SIGNING_KEY),
            ("&lt;&gt;&quot;&#039;&#39;&#x27;&#X22;&#0038;", b"<>\"'''\"&"),
            ("&amp;lt;", b"&lt;"),  # one pass, as strtr does
            ("&copy; &lt &AMP;", b"&copy; &lt &AMP;"),  # WordPress leaves these; html.unescape would not
        ],
    )
    def test_key_is_decoded_as_wordpress_does(self, stored: str, key: bytes) -> None:
        assert woocommerce.secret_key(stored) == key

    def test_sign_matches_wordpress(self) -> None:
        body = php_json(order())
        assert woocommerce.sign(WOO_SECRET_STORED, body) == hmac_b64(WOO_SIGNING_KEY, body)

    def test_ping_is_recognised(self) -> None:
        assert woocommerce.is_ping({}, b"webhook_id=12")
        assert not woocommerce.is_ping({}, b'{"id": 12}')
        assert not woocommerce.is_ping({woocommerce.TOPIC_HEADER: "order.updated"}, b"webhook_id=12")


class TestOrders:
    def test_processing_order_is_paid(self) -> None:
        (inbound,) = events(order())
        assert (inbound.event_type, inbound.key) == ("order.paid", "order:4711:paid")
        paid = inbound.event
        assert isinstance(paid, OrderPaid)
        assert (paid.order_id, paid.currency, paid.subtotal, paid.total) == ("4711", "EUR", 3600, 4774)
        assert paid.placed_at == datetime(2026, 3, 14, 10, 20, 47, tzinfo=UTC)
        assert paid.customer == Customer(
            customer_id="17", email="grace@example.com", first_name="Grace", last_name="Hopper"
        )
        kenya, filters = paid.lines
        assert (kenya.product_id, kenya.title, kenya.quantity, kenya.unit_price, kenya.discount) == (
            "88",
            "Kenya AA \u2013 500 g",
            2,
            1500,
            300,
        )
        # 10.00 for 3 before the coupon, 9.00 after: 3 x 3.34 - 1.02, exactly the line.
        assert (filters.quantity, filters.unit_price, filters.discount, filters.sku) == (3, 334, 102, None)

    def test_completed_is_the_same_paid_fact(self) -> None:
        assert keys(order("order_completed")) == ["order:4711:paid"]

    def test_refunds_follow_the_payment_each_once(self) -> None:
        refunds = [
            {"id": 4725, "reason": "", "total": "-9.00"},
            {"id": 4720, "reason": "", "total": "-13.50"},
        ]
        result = events(order("order_completed", refunds=refunds))
        assert [inbound.key for inbound in result] == [
            "order:4711:paid",
            "order:4711:refund:4720",
            "order:4711:refund:4725",
        ]
        assert result[1].event == OrderRefunded(order_id="4711", refund_id="4720", amount=1350)

    def test_refunded_without_refunds_listed_refunds_the_whole(self) -> None:
        result = events(order(status="refunded"))
        assert result[-1].key == "order:4711:refund:status-refunded"
        assert result[-1].event == OrderRefunded(order_id="4711", refund_id="status-refunded", amount=4774)

    def test_cancelled_after_payment(self) -> None:
        result = events(order(status="cancelled"))
        assert [inbound.key for inbound in result] == ["order:4711:paid", "order:4711:cancelled"]
        assert result[1].event == OrderCancelled(order_id="4711")

    @pytest.mark.parametrize(
        "changes",
        [
            {"status": "pending", "date_paid_gmt": None},
            {"status": "on-hold", "date_paid_gmt": None},
            {"status": "failed", "date_paid_gmt": None},
            {"status": "cancelled", "date_paid_gmt": None},
            {"customer_id": 0},
        ],
    )
    def test_unpaid_and_guest_orders_are_ignored(self, changes: dict[str, Any]) -> None:
        result = woocommerce.translate("order.updated", php_json(order(**changes)), store_currency="EUR")
        assert isinstance(result, Ignored)

    def test_a_shops_own_status_after_payment_is_paid(self) -> None:
        assert keys(order(status="shipped")) == ["order:4711:paid"]

    def test_more_decimals_than_the_currency_round_half_up(self) -> None:
        payload = order()
        payload["line_items"][1] |= {"subtotal": "10.0050", "total": "9.0049"}
        paid = events(payload)[0].event
        assert isinstance(paid, OrderPaid)
        filters = paid.lines[1]
        assert (filters.unit_price, filters.unit_price * 3 - filters.discount) == (334, 900)

    def test_wrong_amount_is_422_naming_it(self) -> None:
        payload = order()
        payload["line_items"][0]["total"] = "lots"
        with pytest.raises(InvalidInput) as raised:
            events(payload)
        assert raised.value.extra["field"] == "body.line_items[0].total"


class TestCustomersAndProducts:
    def test_customer(self) -> None:
        (inbound,) = events(fixture("woocommerce", "customer_updated"), "customer.updated")
        assert inbound.key == "customer:17:2026-03-20T08:44:03+00:00"
        assert inbound.event == Customer(
            customer_id="17",
            email="grace.hopper@example.com",
            first_name="Grace",
            last_name="Hopper",
            updated_at=datetime(2026, 3, 20, 8, 44, 3, tzinfo=UTC),
        )

    def test_customer_without_modification_time_is_keyed_by_content(self) -> None:
        payload = fixture("woocommerce", "customer_updated") | {"date_modified_gmt": None}
        (inbound,) = events(payload, "customer.created")
        assert inbound.key.startswith("customer:17:sha256-")

    def test_product(self) -> None:
        (inbound,) = events(fixture("woocommerce", "product_updated"), "product.updated")
        assert inbound.key == "product:88:2026-03-10T16:45:12+00:00"
        assert inbound.event == ProductUpserted(
            product_id="88",
            title="Kenya AA",
            category="Coffee & Espresso",
            brand="Roastery Nord",
            price=1500,
            tags=["washed", "Kenya"],
            updated_at=datetime(2026, 3, 10, 16, 45, 12, tzinfo=UTC),
        )

    def test_draft_product_without_price(self) -> None:
        payload = fixture("woocommerce", "product_updated") | {
            "status": "draft",
            "price": "",
            "categories": [],
        }
        (inbound,) = events(payload, "product.created")
        product = inbound.event
        assert isinstance(product, ProductUpserted)
        assert (product.active, product.price, product.category) == (False, None, None)

    @pytest.mark.parametrize("topic", ["order.deleted", "coupon.created", "action.woocommerce_new_order"])
    def test_other_topics_are_ignored(self, topic: str) -> None:
        assert isinstance(woocommerce.translate(topic, b"{}", store_currency="EUR"), Ignored)


@pytest.fixture
async def shop(client: Client) -> StoreCreated:
    return await make_platform_store(client)


async def balance(runtime: Runtime, shop: StoreCreated) -> int:
    return int((await member_state(runtime, shop, "17"))["balance"])


class TestRoute:
    async def test_ping_is_answered_without_a_signature(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        response = await client.post(
            f"/v1/hooks/woocommerce/{shop.store_id}",
            content=b"webhook_id=12",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (response.status_code, response.json()) == (200, {"status": "ignored"})
        assert await count(runtime, "inbox", shop) == 0

    async def test_bad_or_missing_signature_is_401_and_writes_nothing(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        # The stored form of the secret, not decoded: what a naive verifier would use.
        undecoded = await send_woo(client, shop, "order.updated", order(), key=WOO_SECRET_STORED.encode())
        unsigned = await send_woo(
            client, shop, "order.updated", order(), headers={"X-WC-Webhook-Signature": ""}
        )
        for response in (undecoded, unsigned):
            assert response.status_code == 401
        for table in ("inbox", "orders", "members"):
            assert await count(runtime, table, shop) == 0

    async def test_processing_then_completed_credits_once(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        first = await send_woo(client, shop, "order.created", order())
        assert first.json() == {"status": "applied"}, first.text
        again = await send_woo(client, shop, "order.updated", order())
        completed = await send_woo(client, shop, "order.updated", order("order_completed"))
        assert (again.json(), completed.json()) == ({"status": "duplicate"}, {"status": "duplicate"})
        state = await member_state(runtime, shop, "17")
        assert (state["balance"], state["orders_count"]) == (36, 1)
        inbox = await row(
            runtime, "SELECT event_id, delivery_id FROM inbox WHERE store_id = $1", shop.store_id
        )
        assert inbox is not None
        assert (inbox["event_id"], len(inbox["delivery_id"])) == ("order:4711:paid", 32)

    async def test_concurrent_snapshots_credit_once(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        snapshots = [order(), order("order_completed")] * 3
        responses = await asyncio.gather(*(send_woo(client, shop, "order.updated", s) for s in snapshots))
        assert sorted(r.json()["status"] for r in responses) == ["applied"] + ["duplicate"] * 5
        assert await balance(runtime, shop) == 36

    async def test_growing_refunds_reverse_only_the_difference(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        await send_woo(client, shop, "order.created", order())
        partial = order("order_refunded_partial")
        assert (await send_woo(client, shop, "order.updated", partial)).json() == {"status": "applied"}
        assert await balance(runtime, shop) == 23  # 36 - floor(36 x 13.50 / 36.00)
        assert (await send_woo(client, shop, "order.updated", partial)).json() == {"status": "duplicate"}
        partial["refunds"] = [{"id": 4726, "reason": "", "total": "-9.00"}, *partial["refunds"]]
        assert (await send_woo(client, shop, "order.updated", partial)).json() == {"status": "applied"}
        assert await balance(runtime, shop) == 14  # 36 - floor(36 x 22.50 / 36.00)
        assert await count(runtime, "refunds", shop) == 2

    async def test_order_first_seen_refunded_is_paid_then_refunded(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        response = await send_woo(client, shop, "order.updated", order("order_refunded_partial"))
        assert response.json() == {"status": "applied"}
        assert await balance(runtime, shop) == 23

    async def test_cancelled_after_payment_reverses_all(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        await send_woo(client, shop, "order.created", order())
        cancelled = await send_woo(client, shop, "order.updated", order(status="cancelled"))
        assert cancelled.json() == {"status": "applied"}
        state = await member_state(runtime, shop, "17")
        assert (state["balance"], state["orders_count"]) == (0, 0)

    async def test_unpaid_order_is_ignored_and_writes_nothing(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        response = await send_woo(client, shop, "order.created", order(status="pending", date_paid_gmt=None))
        assert response.json() == {"status": "ignored"}
        assert await count(runtime, "inbox", shop) == 0

    @pytest.mark.parametrize(("body", "status"), [(b"not json", 400), (b'{"id": 4711}', 422)])
    async def test_unintelligible_payload_writes_nothing(
        self, client: Client, shop: StoreCreated, runtime: Runtime, body: bytes, status: int
    ) -> None:
        response = await send_woo(client, shop, "order.updated", body)
        assert response.status_code == status, response.text
        assert await count(runtime, "inbox", shop) == 0

    async def test_stale_customer_snapshot_is_ignored(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        newer = fixture("woocommerce", "customer_updated")
        older = newer | {"date_modified_gmt": "2026-03-01T08:00:00", "last_name": "Murray"}
        assert (await send_woo(client, shop, "customer.updated", newer)).json() == {"status": "applied"}
        assert (await send_woo(client, shop, "customer.updated", older)).json() == {"status": "duplicate"}
        assert (await send_woo(client, shop, "customer.updated", newer)).json() == {"status": "duplicate"}
        member = await row(runtime, "SELECT last_name, email FROM members WHERE store_id = $1", shop.store_id)
        assert member == {"last_name": "Hopper", "email": "grace.hopper@example.com"}

    async def test_order_lines_take_categories_from_the_catalogue(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        product = fixture("woocommerce", "product_updated")
        assert (await send_woo(client, shop, "product.updated", product)).json() == {"status": "applied"}
        await send_woo(client, shop, "order.created", order())
        line = await row(
            runtime, "SELECT category FROM order_lines WHERE store_id = $1 AND line_id = '612'", shop.store_id
        )
        assert line == {"category": "Coffee & Espresso"}

    async def test_rotated_secret_and_the_previous_both_verify(
        self, client: Client, shop: StoreCreated
    ) -> None:
        rotated = await client.post(
            f"/v1/admin/stores/{shop.store_id}/platform-secrets",
            json={"platform": "woocommerce", "secret": "n3w&amp;secret"},
            headers=ADMIN,
        )
        assert rotated.status_code == 200
        assert (await send_woo(client, shop, "order.created", order())).status_code == 200
        fresh = await send_woo(client, shop, "order.updated", order("order_completed"), key=b"n3w&secret")
        assert fresh.status_code == 200
        assert (await send_woo(client, shop, "order.updated", order(), key=b"neither")).status_code == 401
