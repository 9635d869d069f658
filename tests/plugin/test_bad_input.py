"""Bad input on the JSON API and the three webhooks (signed correctly, so the payload itself is
what is refused): oversized and deeply nested bodies, wrong media types, unicode edge cases,
out-of-range amounts and timestamps. Each is a 4xx problem, never a 500, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from loyalty.stores import StoreCreated
from plugin.request_bodies import API_MAX_BODY_BYTES, WEBHOOK_MAX_BODY_BYTES
from plugin.runtime import Runtime
from tests.events import make_customer, make_line, make_order, signed_headers
from tests.hooks.platforms import fixture, make_platform_store, send_shopify, send_woo
from tests.members import new_member
from tests.service import key

Client = httpx.AsyncClient
Send = Callable[[Client, StoreCreated, Any], Awaitable[httpx.Response]]

NUL = "Ada\u0000Lovelace"
LONE_SURROGATE = "Ada\ud800"
PLANE_1_AND_RTL = "שלום مرحبا 👩🏽‍💻 Ǆ e\u0301"


@pytest.fixture
async def shop(client: Client) -> StoreCreated:
    return await make_platform_store(client)


async def store_rows(runtime: Runtime, store: StoreCreated) -> dict[str, int]:
    """Rows per table belonging to the store: equal before and after means nothing was written."""
    async with runtime.pool.acquire() as conn:
        tables = await conn.fetch(
            """
            SELECT c.table_name FROM information_schema.columns c
            JOIN information_schema.tables t USING (table_schema, table_name)
            WHERE c.column_name = 'store_id' AND c.table_schema = current_schema()
              AND t.table_type = 'BASE TABLE'
            """
        )
        sql = 'SELECT count(*) FROM "{}" WHERE store_id = $1'
        return {row[0]: await conn.fetchval(sql.format(row[0]), store.store_id) for row in tables}


def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body


async def refused(
    runtime: Runtime, store: StoreCreated, request: Awaitable[httpx.Response], *statuses: int
) -> dict[str, Any]:
    """The request is answered with one of `statuses` as a problem, and writes nothing."""
    before = await store_rows(runtime, store)
    problem = assert_problem(await request, *statuses)
    assert await store_rows(runtime, store) == before
    return problem


def json_bytes(value: Any) -> bytes:
    """JSON as a platform sends it; `ensure_ascii` writes lone surrogates as `\\udXXX` escapes."""
    return json.dumps(value).encode()


async def send_standard(client: Client, store: StoreCreated, body: bytes) -> httpx.Response:
    headers = signed_headers(store.webhook_secret, body)
    return await client.post(f"/v1/hooks/standard/{store.store_id}", content=body, headers=headers)


def order_paid(**overrides: Any) -> bytes:
    return json_bytes({"type": "order.paid", "data": make_order(**overrides)})


# --- Size ---------------------------------------------------------------------------------------


class Counted:
    """A request body streamed in chunks, counting how many the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            self.pulled += 1
            size = min(self.chunk, self.total - sent)
            sent += size
            yield b" " * size


class TestSize:
    async def test_an_announced_oversized_body_is_refused_before_any_of_it_is_read(
        self, client: Client, runtime: Runtime, shop: StoreCreated
    ) -> None:
        cid = await new_member(client, shop, points=10)
        body = Counted(API_MAX_BODY_BYTES + 1)
        headers = key(shop, "channel") | {
            "content-type": "application/json",
            "content-length": str(body.total),
        }
        request = client.post(f"/v1/members/{cid}/cases", content=body, headers=headers)
        problem = await refused(runtime, shop, request, 413)
        assert problem["type"] == "urn:patron:problem:too-large"
        assert body.pulled == 0

    async def test_an_unannounced_oversized_body_is_cut_off_at_the_limit(
        self, client: Client, runtime: Runtime, shop: StoreCreated
    ) -> None:
        body = Counted(20 * WEBHOOK_MAX_BODY_BYTES)
        request = client.post(f"/v1/hooks/standard/{shop.store_id}", content=body)
        await refused(runtime, shop, request, 413)
        assert body.pulled * body.chunk <= WEBHOOK_MAX_BODY_BYTES + body.chunk

    @pytest.mark.parametrize("platform", ["standard", "shopify", "woocommerce"])
    async def test_webhooks_refuse_more_than_their_limit(
        self, client: Client, runtime: Runtime, shop: StoreCreated, platform: str
    ) -> None:
        body = b" " * (WEBHOOK_MAX_BODY_BYTES + 1)
        request = client.post(f"/v1/hooks/{platform}/{shop.store_id}", content=body)
        await refused(runtime, shop, request, 413)

    async def test_a_webhook_takes_an_order_larger_than_an_api_body(
        self, client: Client, shop: StoreCreated
    ) -> None:
        lines = [make_line(title="Beans " + "x" * 400, unit_price=1) for _ in range(1000)]
        body = order_paid(lines=lines)
        assert API_MAX_BODY_BYTES < len(body) < WEBHOOK_MAX_BODY_BYTES
        response = await send_standard(client, shop, body)
        assert response.json() == {"status": "applied"}, response.text


# --- Shape ---------------------------------------------------------------------------------------

DEEP = 100_000


def deep_json(depth: int = DEEP) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


class TestNesting:
    async def test_api(self, client: Client, runtime: Runtime, shop: StoreCreated) -> None:
        headers = key(shop, "marketer") | {"content-type": "application/json"}
        body = b'{"targets": ' + b"[" * DEEP + b"]" * DEEP + b"}"
        request = client.put("/v1/cases/policy", content=body, headers=headers)
        problem = await refused(runtime, shop, request, 400)
        assert problem["type"] == "urn:patron:problem:malformed"

    async def test_standard(self, client: Client, runtime: Runtime, shop: StoreCreated) -> None:
        body = b'{"type": "order.paid", "data": ' + deep_json() + b"}"
        await refused(runtime, shop, send_standard(client, shop, body), 400)

    async def test_shopify(self, client: Client, runtime: Runtime, shop: StoreCreated) -> None:
        await refused(runtime, shop, send_shopify(client, shop, "orders/paid", deep_json()), 400)

    async def test_woocommerce(self, client: Client, runtime: Runtime, shop: StoreCreated) -> None:
        await refused(runtime, shop, send_woo(client, shop, "order.updated", deep_json()), 400)


class TestMediaTypes:
    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
    )
    async def test_api_bodies_must_be_json(
        self, client: Client, runtime: Runtime, shop: StoreCreated, content_type: str
    ) -> None:
        cid = await new_member(client, shop, points=10)
        body = json_bytes({"channel": "web", "category": "delivery", "subject": "Late"})
        headers = key(shop, "channel") | {"content-type": content_type}
        request = client.post(f"/v1/members/{cid}/cases", content=body, headers=headers)
        problem = await refused(runtime, shop, request, 415)
        assert problem["type"] == "urn:patron:problem:unsupported-media-type"

    async def test_json_with_a_charset_is_json(self, client: Client, shop: StoreCreated) -> None:
        cid = await new_member(client, shop, points=10)
        body = json_bytes({"channel": "web", "category": "delivery", "subject": "Late"})
        headers = key(shop, "channel") | {"content-type": "application/json; charset=utf-8"}
        response = await client.post(f"/v1/members/{cid}/cases", content=body, headers=headers)
        assert response.status_code == 201, response.text

    async def test_a_signed_webhook_body_that_is_not_json_is_400(
        self, client: Client, runtime: Runtime, shop: StoreCreated
    ) -> None:
        body = b"<order><id>1</id></order>"
        headers = signed_headers(shop.webhook_secret, body) | {"content-type": "application/xml"}
        request = client.post(f"/v1/hooks/standard/{shop.store_id}", content=body, headers=headers)
        await refused(runtime, shop, request, 400)


# --- Text ----------------------------------------------------------------------------------------


Prepared = Awaitable[httpx.Response]
"""A request, made once what it needs (a member) exists: what it writes is all that is measured."""


async def standard_customer(client: Client, store: StoreCreated, name: str) -> Prepared:
    body = json_bytes({"type": "customer.upserted", "data": make_customer(first_name=name)})
    return send_standard(client, store, body)


async def standard_category(client: Client, store: StoreCreated, name: str) -> Prepared:
    return send_standard(client, store, order_paid(lines=[make_line(category=name)]))


async def shopify_customer(client: Client, store: StoreCreated, name: str) -> Prepared:
    payload = fixture("shopify", "customers_update") | {"first_name": name}
    return send_shopify(client, store, "customers/update", json_bytes(payload))


async def woo_category(client: Client, store: StoreCreated, name: str) -> Prepared:
    payload = fixture("woocommerce", "product_updated")
    payload["categories"] = [{"id": 21, "name": name, "slug": "x"}]
    return send_woo(client, store, "product.updated", json_bytes(payload))


async def api_case(client: Client, store: StoreCreated, subject: str, category: str = "delivery") -> Prepared:
    cid = await new_member(client, store, points=10)
    body = json_bytes({"channel": "web", "category": category, "subject": subject})
    headers = key(store, "channel") | {"content-type": "application/json"}
    return client.post(f"/v1/members/{cid}/cases", content=body, headers=headers)


async def api_case_category(client: Client, store: StoreCreated, category: str) -> Prepared:
    return await api_case(client, store, "Late", category=category)


async def api_tags(client: Client, store: StoreCreated, tag: str) -> Prepared:
    cid = await new_member(client, store, points=10)
    body = json_bytes({"channel": "web", "tags": [tag]})
    headers = key(store, "channel") | {"content-type": "application/json"}
    return client.patch(f"/v1/members/{cid}/preferences", content=body, headers=headers)


Prepare = Callable[[Client, StoreCreated, str], Awaitable[Prepared]]
TEXT_SENDERS: dict[str, tuple[Prepare, str]] = {
    # Where the text lands, to read it back: a query of (store_id, text) that counts its rows.
    "standard customer name": (
        standard_customer,
        "SELECT count(*) FROM members WHERE store_id = $1 AND first_name = $2",
    ),
    "standard line category": (
        standard_category,
        "SELECT count(*) FROM order_lines WHERE store_id = $1 AND category = $2",
    ),
    "shopify customer name": (
        shopify_customer,
        "SELECT count(*) FROM members WHERE store_id = $1 AND first_name = $2",
    ),
    "woocommerce product category": (
        woo_category,
        "SELECT count(*) FROM products WHERE store_id = $1 AND category = $2",
    ),
    "api case subject": (api_case, "SELECT count(*) FROM cases WHERE store_id = $1 AND subject = $2"),
    "api case category": (
        api_case_category,
        "SELECT count(*) FROM cases WHERE store_id = $1 AND category = $2",
    ),
    "api preference tag": (
        api_tags,
        "SELECT count(*) FROM members WHERE store_id = $1 AND preferences::text LIKE '%' || $2 || '%'",
    ),
}


class TestText:
    @pytest.mark.parametrize("where", TEXT_SENDERS)
    @pytest.mark.parametrize("text", [NUL, LONE_SURROGATE], ids=["nul", "lone-surrogate"])
    async def test_text_postgresql_cannot_store_is_refused(
        self, client: Client, runtime: Runtime, shop: StoreCreated, where: str, text: str
    ) -> None:
        prepare, _ = TEXT_SENDERS[where]
        await refused(runtime, shop, await prepare(client, shop, text), 400, 422)

    @pytest.mark.parametrize("where", TEXT_SENDERS)
    async def test_any_other_unicode_is_kept_as_sent(
        self, client: Client, runtime: Runtime, shop: StoreCreated, where: str
    ) -> None:
        prepare, stored = TEXT_SENDERS[where]
        response = await (await prepare(client, shop, PLANE_1_AND_RTL))
        assert response.status_code in (200, 201), response.text
        async with runtime.pool.acquire() as conn:
            assert await conn.fetchval(stored, shop.store_id, PLANE_1_AND_RTL) == 1

    async def test_a_name_is_measured_in_characters(self, client: Client, shop: StoreCreated) -> None:
        at_limit = await (await standard_customer(client, shop, "👩🏽" * 100))
        assert at_limit.json() == {"status": "applied"}, at_limit.text
        assert_problem(await (await standard_customer(client, shop, "é" * 201)), 422)

    async def test_a_very_long_string_is_refused(
        self, client: Client, runtime: Runtime, shop: StoreCreated
    ) -> None:
        await refused(runtime, shop, await standard_category(client, shop, "x" * 100_000), 422)


# --- Numbers and times ---------------------------------------------------------------------------

HUGE = [-1, 2**63, 10**30, -(2**63) - 1]


class TestAmounts:
    @pytest.mark.parametrize("amount", HUGE)
    @pytest.mark.parametrize("field", ["unit_price", "quantity", "discount"])
    async def test_standard_line(
        self, client: Client, runtime: Runtime, shop: StoreCreated, field: str, amount: int
    ) -> None:
        body = order_paid(lines=[make_line(**{field: amount})])
        await refused(runtime, shop, send_standard(client, shop, body), 422)

    @pytest.mark.parametrize("amount", [*HUGE, 1.5])
    async def test_standard_refund(
        self, client: Client, runtime: Runtime, shop: StoreCreated, amount: float
    ) -> None:
        refund = {"order_id": "o1", "refund_id": "r1", "amount": amount}
        body = json_bytes({"type": "order.refunded", "data": refund})
        await refused(runtime, shop, send_standard(client, shop, body), 422)

    @pytest.mark.parametrize("price", ["-5.00", "1e30", "99999999999999999999.99", "NaN", "Infinity"])
    async def test_shopify_price(
        self, client: Client, runtime: Runtime, shop: StoreCreated, price: str
    ) -> None:
        payload = fixture("shopify", "orders_paid")
        payload["line_items"][0]["price"] = price
        payload["current_subtotal_price"] = price
        request = send_shopify(client, shop, "orders/paid", json_bytes(payload))
        await refused(runtime, shop, request, 422)

    @pytest.mark.parametrize("total", ["-5.00", "1e30", "99999999999999999999.99", "NaN"])
    async def test_woocommerce_total(
        self, client: Client, runtime: Runtime, shop: StoreCreated, total: str
    ) -> None:
        payload = fixture("woocommerce", "order_completed")
        payload["total"] = total
        payload["line_items"][0]["total"] = total
        request = send_woo(client, shop, "order.updated", json_bytes(payload))
        await refused(runtime, shop, request, 422)

    @pytest.mark.parametrize("points", [2**63, 10**30, -(10**30)])
    async def test_adjustment(
        self, client: Client, runtime: Runtime, shop: StoreCreated, points: int
    ) -> None:
        cid = await new_member(client, shop, points=10)
        body = json_bytes({"points": points, "reason": "goodwill"})
        headers = key(shop, "marketer") | {"content-type": "application/json"}
        request = client.post(f"/v1/members/{cid}/adjustments", content=body, headers=headers)
        await refused(runtime, shop, request, 422)

    @pytest.mark.parametrize("value", [2**63, 10**30])
    @pytest.mark.parametrize("where", ["reward cost", "tier threshold", "expiry days"])
    async def test_program(
        self, client: Client, runtime: Runtime, shop: StoreCreated, where: str, value: int
    ) -> None:
        marketer = key(shop, "marketer")
        current = await client.get("/v1/program", headers=marketer)
        program = current.json()
        if where == "reward cost":
            program["rewards"] = [{"reward_id": "big", "name": "Big", "cost": value}]
        elif where == "tier threshold":
            program["tiers"]["levels"][-1]["threshold"] = value
        else:
            program["points"]["expiry_days"] = value
        headers = marketer | {"if-match": current.headers["etag"], "content-type": "application/json"}
        request = client.put("/v1/program", content=json_bytes(program), headers=headers)
        await refused(runtime, shop, request, 422)
        preview = await client.post("/v1/program/preview", content=json_bytes(program), headers=headers)
        assert_problem(preview, 422)

    @pytest.mark.parametrize(
        "query", ["since=9223372036854775808", "limit=100000000000000000000", "since=-1"]
    )
    async def test_query_numbers(self, client: Client, shop: StoreCreated, query: str) -> None:
        cid = await new_member(client, shop, points=10)
        response = await client.get(f"/v1/members/{cid}/changes?{query}", headers=key(shop, "channel"))
        assert_problem(response, 400, 422)


TIMES = {
    "year 1": "0001-01-01T00:00:00Z",
    "year 1 east of UTC": "0001-01-01T00:30:00+01:00",
    "year 9999": "9999-12-31T23:59:59Z",
    "year 9999 west of UTC": "9999-12-31T23:30:00-01:00",
    "month 13": "2026-13-01T00:00:00Z",
    "day 45": "2026-11-45T00:00:00Z",
    "hour 25": "2026-11-20T25:00:00Z",
    "naive": "2026-11-20T10:00:00",
    "not a time": "yesterday",
}


class TestTimes:
    @pytest.mark.parametrize("moment", TIMES.values(), ids=TIMES.keys())
    async def test_standard_order(
        self, client: Client, runtime: Runtime, shop: StoreCreated, moment: str
    ) -> None:
        await refused(runtime, shop, send_standard(client, shop, order_paid(placed_at=moment)), 422)

    @pytest.mark.parametrize("moment", TIMES.values(), ids=TIMES.keys())
    async def test_standard_customer(
        self, client: Client, runtime: Runtime, shop: StoreCreated, moment: str
    ) -> None:
        body = json_bytes({"type": "customer.upserted", "data": make_customer(updated_at=moment)})
        await refused(runtime, shop, send_standard(client, shop, body), 422)

    @pytest.mark.parametrize("birthday", ["0001-01-01", "9999-12-31", "2026-02-30"])
    async def test_birthday(
        self, client: Client, runtime: Runtime, shop: StoreCreated, birthday: str
    ) -> None:
        body = json_bytes({"type": "customer.upserted", "data": make_customer(birthday=birthday)})
        await refused(runtime, shop, send_standard(client, shop, body), 422)

    @pytest.mark.parametrize("moment", [TIMES["year 1"], TIMES["year 9999"], TIMES["month 13"]])
    async def test_shopify_order(
        self, client: Client, runtime: Runtime, shop: StoreCreated, moment: str
    ) -> None:
        payload = fixture("shopify", "orders_paid") | {"processed_at": moment, "created_at": moment}
        await refused(runtime, shop, send_shopify(client, shop, "orders/paid", json_bytes(payload)), 422)

    @pytest.mark.parametrize("moment", ["0001-01-01T00:00:00", "9999-12-31T23:59:59", "2026-13-01T00:00:00"])
    async def test_woocommerce_order(
        self, client: Client, runtime: Runtime, shop: StoreCreated, moment: str
    ) -> None:
        payload = fixture("woocommerce", "order_completed") | {
            "date_paid_gmt": moment,
            "date_created_gmt": moment,
            "date_modified_gmt": moment,
        }
        await refused(runtime, shop, send_woo(client, shop, "order.updated", json_bytes(payload)), 422)

    @pytest.mark.parametrize("moment", [TIMES["year 1"], TIMES["year 9999"], TIMES["naive"]])
    async def test_preference_change(self, client: Client, shop: StoreCreated, moment: str) -> None:
        cid = await new_member(client, shop, points=10)
        body = json_bytes({"channel": "web", "tags": ["decaf"], "occurred_at": moment})
        headers = key(shop, "channel") | {"content-type": "application/json"}
        response = await client.patch(f"/v1/members/{cid}/preferences", content=body, headers=headers)
        assert_problem(response, 422)
