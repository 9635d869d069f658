"""Shopify webhooks: the pure mapping from Shopify's payloads, then the route end to end."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from hooks import shopify
from hooks.inbound import Ignored, Inbound
from hooks.signing import InvalidSignature
from loyalty.errors import InvalidInput
from loyalty.events import Customer, MalformedEvent, OrderCancelled, OrderPaid, OrderRefunded, ProductUpserted
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.hooks.platforms import (
    SHOPIFY_SECRET,
    count,
    fixture,
    fixture_bytes,
    hmac_b64,
    make_platform_store,
    row,
    send_shopify,
)
from tests.loyalty.test_orders import member_state

Client = httpx.AsyncClient
ORDER_ID = "5836470911152"
CUSTOMER_ID = "7214328479920"


def translate(topic: str, payload: dict[str, Any] | bytes, currency: str = "EUR") -> Inbound | Ignored:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return shopify.translate(topic, body, store_currency=currency)


def event_of(result: Inbound | Ignored) -> Any:
    assert isinstance(result, Inbound), result
    return result.event


class TestOrderPaid:
    def test_fixture_maps_to_order_paid(self) -> None:
        result = translate("orders/paid", fixture_bytes("shopify", "orders_paid"))
        assert isinstance(result, Inbound)
        assert result.event_type == "order.paid"
        order = result.event
        assert isinstance(order, OrderPaid)
        assert (order.order_id, order.currency, order.subtotal, order.total) == (ORDER_ID, "EUR", 6240, 6730)
        assert order.placed_at == datetime(2026, 3, 14, 9, 15, 1, tzinfo=UTC)
        first, second = order.lines
        assert (first.line_id, first.product_id, first.sku) == (
            "14593720123568",
            "8102637420720",
            "ETH-YIR-250-WB",
        )
        assert (first.quantity, first.unit_price, first.discount, first.category) == (2, 1250, 250, None)
        assert (second.unit_price, second.discount, second.sku, second.title) == (
            3990,
            0,
            None,
            "Gooseneck kettle",
        )
        customer = order.customer
        assert (customer.customer_id, customer.email, customer.first_name) == (
            CUSTOMER_ID,
            "ada@example.com",
            "Ada",
        )
        assert customer.marketing_consent is True
        assert customer.updated_at == datetime(2026, 3, 14, 9, 15, 3, tzinfo=UTC)

    def test_subtotal_falls_back_to_subtotal_price(self) -> None:
        payload = fixture("shopify", "orders_paid")
        del payload["current_subtotal_price"], payload["current_total_price"], payload["processed_at"]
        payload["subtotal_price"] = "60.00"
        order = event_of(translate("orders/paid", payload))
        assert (order.subtotal, order.total) == (6000, 6730)
        assert order.placed_at == datetime(2026, 3, 14, 9, 15, 2, tzinfo=UTC)  # created_at

    @pytest.mark.parametrize(("currency", "price", "minor"), [("JPY", "1500", 1500), ("KWD", "1.250", 1250)])
    def test_minor_units_follow_the_currency(self, currency: str, price: str, minor: int) -> None:
        payload = fixture("shopify", "orders_paid")
        payload |= {"currency": currency, "current_subtotal_price": price, "current_total_price": price}
        payload["line_items"] = [payload["line_items"][1] | {"price": price}]
        order = event_of(translate("orders/paid", payload))
        assert (order.subtotal, order.lines[0].unit_price) == (minor, minor)

    def test_legacy_accepts_marketing_and_string_ids(self) -> None:
        payload = fixture("shopify", "orders_paid")
        payload["customer"] = {"id": "c-77", "email": "x@example.com", "accepts_marketing": True}
        assert event_of(translate("orders/paid", payload)).customer.marketing_consent is True

    def test_removed_lines_are_skipped_and_long_names_cut(self) -> None:
        payload = fixture("shopify", "orders_paid")
        payload["line_items"][1]["quantity"] = 0
        payload["customer"]["first_name"] = "A" * 300
        order = event_of(translate("orders/paid", payload))
        assert [line.line_id for line in order.lines] == ["14593720123568"]
        assert order.customer.first_name == "A" * 200

    def test_order_without_customer_is_ignored(self) -> None:
        payload = fixture("shopify", "orders_paid") | {"customer": None}
        assert isinstance(translate("orders/paid", payload), Ignored)

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"current_subtotal_price": "62.405"}, "body.subtotal_price"),
            ({"current_subtotal_price": "-1.00"}, "body.subtotal_price"),
            ({"currency": "euro"}, "body.currency"),
            ({"id": None}, "body.id"),
        ],
    )
    def test_wrong_fields_are_422_naming_them(self, change: dict[str, Any], field: str) -> None:
        with pytest.raises(InvalidInput) as raised:
            translate("orders/paid", fixture("shopify", "orders_paid") | change)
        assert raised.value.extra["field"] == field

    def test_line_amount_errors_name_the_line(self) -> None:
        payload = fixture("shopify", "orders_paid")
        payload["line_items"][1]["price"] = "39.999"
        with pytest.raises(InvalidInput) as raised:
            translate("orders/paid", payload)
        assert raised.value.extra["field"] == "body.line_items[1].price"

    def test_not_json_is_malformed(self) -> None:
        with pytest.raises(MalformedEvent):
            translate("orders/paid", b"{not json")


class TestOtherTopics:
    def test_cancelled(self) -> None:
        event = event_of(translate("orders/cancelled", fixture_bytes("shopify", "orders_cancelled")))
        assert event == OrderCancelled(order_id=ORDER_ID)

    @pytest.mark.parametrize("status", ["pending", "voided", "expired"])
    def test_cancelled_before_payment_is_ignored(self, status: str) -> None:
        payload = fixture("shopify", "orders_cancelled") | {"financial_status": status}
        assert isinstance(translate("orders/cancelled", payload), Ignored)

    def test_refund_of_lines_counts_their_pre_tax_subtotal(self) -> None:
        event = event_of(translate("refunds/create", fixture_bytes("shopify", "refunds_create")))
        assert isinstance(event, OrderRefunded)
        assert (event.order_id, event.refund_id, event.amount) == (ORDER_ID, "1017861914288", 1125)
        assert [(line.line_id, line.quantity) for line in event.lines] == [("14593720123568", 1)]

    def test_refund_of_lines_ignores_tax_in_the_transactions(self) -> None:
        payload = fixture("shopify", "refunds_create")
        payload["refund_line_items"][0]["subtotal"] = "10.00"
        assert event_of(translate("refunds/create", payload)).amount == 1000

    def test_refund_without_lines_counts_successful_refund_transactions_only(self) -> None:
        payload = fixture("shopify", "refunds_create") | {"refund_line_items": []}
        for transaction in payload["transactions"]:
            transaction["amount"] = "4.99"
        event = event_of(translate("refunds/create", payload))
        assert (event.amount, event.lines) == (499, [])

    def test_refund_lines_of_one_item_are_merged(self) -> None:
        payload = fixture("shopify", "refunds_create")
        item = payload["refund_line_items"][0]
        payload["refund_line_items"] = [
            item,
            item | {"id": 1, "quantity": 1},
            item | {"id": 2, "quantity": 0},
        ]
        assert [(line.quantity) for line in event_of(translate("refunds/create", payload)).lines] == [2]

    def test_customer_update(self) -> None:
        event = event_of(translate("customers/update", fixture_bytes("shopify", "customers_update")))
        assert event == Customer(
            customer_id=CUSTOMER_ID,
            email="ada.lovelace@example.com",
            first_name="Ada",
            last_name="King",
            marketing_consent=False,
            updated_at=datetime(2026, 3, 20, 7, 31, 57, tzinfo=UTC),
        )

    def test_product_update(self) -> None:
        event = event_of(translate("products/update", fixture_bytes("shopify", "products_update")))
        assert event == ProductUpserted(
            product_id="8102637420720",
            title="Ethiopia Yirgacheffe",
            category="Coffee",
            brand="Roastery Nord",
            price=1250,
            tags=["single origin", "washed", "Ethiopia"],
            active=True,
            updated_at=datetime(2026, 3, 10, 15, 45, 12, tzinfo=UTC),
        )

    def test_archived_product_without_type_or_variants(self) -> None:
        payload = fixture("shopify", "products_update") | {
            "status": "archived",
            "product_type": "",
            "variants": [],
        }
        event = event_of(translate("products/create", payload))
        assert (event.active, event.category, event.price) == (False, None, None)

    @pytest.mark.parametrize("topic", ["orders/create", "app/uninstalled", "customers/redact", ""])
    def test_other_topics_are_ignored(self, topic: str) -> None:
        assert isinstance(translate(topic, b"{}"), Ignored)


class TestSignatureAndKeys:
    def test_sign_is_base64_hmac_sha256_of_the_raw_body(self) -> None:
        body = fixture_bytes("shopify", "orders_paid")
        assert shopify.sign(SHOPIFY_SECRET, body) == hmac_b64(SHOPIFY_SECRET.encode(), body)

    def test_verify_accepts_either_of_two_secrets(self) -> None:
        body = b'{"id": 1}'
        shopify.verify(["old", "new"], body=body, signature=hmac_b64(b"new", body))
        with pytest.raises(InvalidSignature):
            shopify.verify(["old", "new"], body=body, signature=hmac_b64(b"other", body))
        with pytest.raises(InvalidSignature):
            shopify.verify(["old"], body=body, signature=None)

    def test_key_is_event_id_with_topic_then_webhook_id_then_hash(self) -> None:
        headers = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Event-Id": "e1", "X-Shopify-Webhook-Id": "w1"}
        assert shopify.inbox_key(headers, b"{}") == ("e1:orders/paid", "w1")
        del headers["X-Shopify-Event-Id"]
        assert shopify.inbox_key(headers, b"{}") == ("w1:orders/paid", "w1")
        key, delivery = shopify.inbox_key({"X-Shopify-Topic": "orders/paid"}, b"{}")
        assert key.startswith("sha256-")
        assert key.endswith(":orders/paid")
        assert delivery is None


@pytest.fixture
async def shop(client: Client) -> StoreCreated:
    return await make_platform_store(client)


async def paid(client: Client, shop: StoreCreated, **kwargs: Any) -> httpx.Response:
    return await send_shopify(client, shop, "orders/paid", fixture_bytes("shopify", "orders_paid"), **kwargs)


class TestRoute:
    async def test_orders_paid_credits_the_member(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        response = await paid(client, shop, event_id="evt-1")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "applied"}
        state = await member_state(runtime, shop, CUSTOMER_ID)
        assert (state["balance"], state["orders_count"]) == (62, 1)  # floor(62.40 EUR)
        inbox = await row(
            runtime,
            "SELECT event_type, delivery_id FROM inbox WHERE store_id = $1 AND event_id = $2",
            shop.store_id,
            "evt-1:orders/paid",
        )
        assert inbox is not None
        assert inbox["event_type"] == "order.paid"
        assert inbox["delivery_id"].startswith("b54557e4-")

    async def test_bad_or_missing_hmac_is_401_and_writes_nothing(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        wrong = await paid(client, shop, secret="shpss_not_the_one")
        missing = await paid(client, shop, headers={"X-Shopify-Hmac-Sha256": ""})
        body = fixture_bytes("shopify", "orders_paid")
        tampered = await send_shopify(
            client,
            shop,
            "orders/paid",
            body.replace(b'"62.40"', b'"99.40"'),
            headers={"X-Shopify-Hmac-Sha256": hmac_b64(SHOPIFY_SECRET.encode(), body)},
        )
        for response in (wrong, missing, tampered):
            assert response.status_code == 401
            assert response.json()["type"] == "urn:patron:problem:invalid-signature"
        for table in ("inbox", "orders", "members"):
            assert await count(runtime, table, shop) == 0

    async def test_unknown_topic_is_acknowledged_and_writes_nothing(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        response = await send_shopify(client, shop, "app/uninstalled", {"id": 1, "name": "Roastery Nord"})
        assert response.status_code == 200
        assert response.json() == {"status": "ignored"}
        assert await count(runtime, "inbox", shop) == 0
        unsigned = await send_shopify(client, shop, "app/uninstalled", {"id": 1}, secret="wrong")
        assert unsigned.status_code == 401

    @pytest.mark.parametrize(
        ("body", "status"), [(b"not json", 400), (b'{"id": 1, "currency": "EUR"}', 422), (b"[]", 422)]
    )
    async def test_unintelligible_payload_writes_nothing(
        self, client: Client, shop: StoreCreated, runtime: Runtime, body: bytes, status: int
    ) -> None:
        response = await send_shopify(client, shop, "orders/paid", body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert await count(runtime, "inbox", shop) == 0

    async def test_missing_topic_is_400_and_unknown_store_404(
        self, client: Client, shop: StoreCreated
    ) -> None:
        response = await paid(client, shop, headers={"X-Shopify-Topic": ""})
        assert response.status_code == 400
        other = StoreCreated(store_id="st_missing", api_keys={}, webhook_secret="")
        assert (await paid(client, other)).status_code == 404

    async def test_redelivery_is_duplicate(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        assert (await paid(client, shop, event_id="evt-1")).json() == {"status": "applied"}
        assert (await paid(client, shop, event_id="evt-1")).json() == {"status": "duplicate"}
        assert (await member_state(runtime, shop, CUSTOMER_ID))["balance"] == 62

    async def test_order_announced_again_under_new_event_id_credits_once(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        assert (await paid(client, shop, event_id="evt-1")).json() == {"status": "applied"}
        resend = await paid(client, shop, event_id="evt-2")
        assert resend.json() == {"status": "duplicate"}
        state = await member_state(runtime, shop, CUSTOMER_ID)
        assert (state["balance"], state["orders_count"]) == (62, 1)
        assert await count(runtime, "ledger_entries", shop) == 1

    async def test_concurrent_announcements_credit_once(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        responses = await asyncio.gather(*(paid(client, shop) for _ in range(6)))
        assert sorted(r.json()["status"] for r in responses) == ["applied"] + ["duplicate"] * 5
        assert (await member_state(runtime, shop, CUSTOMER_ID))["balance"] == 62

    async def test_topics_sharing_an_event_id_each_apply(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        await paid(client, shop)
        refund = fixture_bytes("shopify", "refunds_create")
        cancel = fixture_bytes("shopify", "orders_cancelled")
        first = await send_shopify(client, shop, "refunds/create", refund, event_id="evt-cancel")
        second = await send_shopify(client, shop, "orders/cancelled", cancel, event_id="evt-cancel")
        assert (first.json(), second.json()) == ({"status": "applied"}, {"status": "applied"})
        assert (await member_state(runtime, shop, CUSTOMER_ID))["balance"] == 0

    async def test_partial_refund_reverses_the_refunded_line(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        await paid(client, shop)
        refund = fixture_bytes("shopify", "refunds_create")
        assert (await send_shopify(client, shop, "refunds/create", refund)).json() == {"status": "applied"}
        # One of two bags refunded: half of the 22.50 EUR line's points.
        assert (await member_state(runtime, shop, CUSTOMER_ID))["balance"] == 51
        assert (await send_shopify(client, shop, "refunds/create", refund)).json() == {"status": "duplicate"}
        assert (await member_state(runtime, shop, CUSTOMER_ID))["balance"] == 51

    async def test_refund_before_its_order_is_parked_then_applied(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        refund = fixture_bytes("shopify", "refunds_create")
        assert (await send_shopify(client, shop, "refunds/create", refund)).json() == {"status": "parked"}
        assert (await paid(client, shop)).json() == {"status": "applied"}
        assert (await member_state(runtime, shop, CUSTOMER_ID))["balance"] == 51

    async def test_unpaid_cancellation_is_recorded_as_ignored(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        payload = fixture("shopify", "orders_cancelled") | {"financial_status": "voided"}
        response = await send_shopify(client, shop, "orders/cancelled", payload, event_id="evt-void")
        assert response.json() == {"status": "ignored"}
        outcome = await row(runtime, "SELECT outcome FROM inbox WHERE store_id = $1", shop.store_id)
        assert outcome == {"outcome": "ignored"}
        assert await count(runtime, "parked_events", shop) == 0

    async def test_stale_customer_snapshot_is_ignored(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        newer = fixture("shopify", "customers_update")
        older = newer | {"updated_at": "2026-03-01T08:00:00+01:00", "last_name": "Byron"}
        assert (await send_shopify(client, shop, "customers/update", newer)).json() == {"status": "applied"}
        assert (await send_shopify(client, shop, "customers/update", older)).json() == {"status": "duplicate"}
        member = await row(
            runtime,
            "SELECT last_name, email, marketing_consent FROM members WHERE store_id = $1",
            shop.store_id,
        )
        assert member == {
            "last_name": "King",
            "email": "ada.lovelace@example.com",
            "marketing_consent": False,
        }

    async def test_order_lines_take_categories_from_the_catalogue(
        self, client: Client, shop: StoreCreated, runtime: Runtime
    ) -> None:
        product = fixture_bytes("shopify", "products_update")
        assert (await send_shopify(client, shop, "products/update", product)).json() == {"status": "applied"}
        await paid(client, shop)
        line = await row(
            runtime,
            "SELECT category FROM order_lines WHERE store_id = $1 AND product_id = $2",
            shop.store_id,
            "8102637420720",
        )
        assert line == {"category": "Coffee"}


def test_offsets_are_kept_as_instants() -> None:
    payload = fixture("shopify", "orders_paid") | {"processed_at": "2026-03-14T19:15:01+10:00"}
    order = event_of(translate("orders/paid", payload))
    assert order.placed_at == datetime(2026, 3, 14, 19, 15, 1, tzinfo=timezone(timedelta(hours=10)))
