"""A store's platform secrets: rotation with two valid at once, through the webhook routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from hooks import signing
from hooks.platforms import DEFAULT_GRACE_SECONDS
from hooks.signing import is_secret
from loyalty.stores import StoreCreated
from plugin.runtime import Runtime
from tests.conftest import ADMIN, make_store
from tests.events import make_customer, signed_headers
from tests.hooks.platforms import SHOPIFY_SECRET, fixture_bytes, make_platform_store, send_shopify

Client = httpx.AsyncClient


@pytest.fixture
async def shop(client: Client) -> StoreCreated:
    return await make_platform_store(client)


async def paid(client: Client, shop: StoreCreated, **kwargs: Any) -> httpx.Response:
    return await send_shopify(client, shop, "orders/paid", fixture_bytes("shopify", "orders_paid"), **kwargs)


async def rotate(client: Client, shop: StoreCreated, platform: str, **body: Any) -> httpx.Response:
    return await client.post(
        f"/v1/admin/stores/{shop.store_id}/platform-secrets",
        json={"platform": platform} | body,
        headers=ADMIN,
    )


class TestSecretRotation:
    async def rotate(self, client: Client, shop: StoreCreated, **body: Any) -> httpx.Response:
        return await rotate(client, shop, "shopify", **body)

    async def test_both_secrets_verify_during_the_grace_period(
        self, client: Client, shop: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        response = await self.rotate(client, shop, secret="shpss_new", grace_seconds=3600)
        assert response.status_code == 200, response.text
        until = datetime.fromisoformat(response.json()["previous_valid_until"])
        assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
        assert (await paid(client, shop, secret=SHOPIFY_SECRET)).status_code == 200
        product = fixture_bytes("shopify", "products_update")
        assert (
            await send_shopify(client, shop, "products/update", product, secret="shpss_new")
        ).status_code == 200
        later = datetime.now(UTC) + timedelta(hours=2)
        monkeypatch.setattr(runtime, "clock", lambda: later)
        assert (await paid(client, shop, secret=SHOPIFY_SECRET)).status_code == 401
        assert (await paid(client, shop, secret="shpss_new")).status_code == 200

    async def test_no_grace_ends_the_old_secret_and_a_third_drops_the_first(
        self, client: Client, shop: StoreCreated
    ) -> None:
        response = await self.rotate(client, shop, secret="shpss_two", grace_seconds=0)
        assert response.json() == {"platform": "shopify", "previous_valid_until": None}
        assert (await paid(client, shop, secret=SHOPIFY_SECRET)).status_code == 401
        await self.rotate(client, shop, secret="shpss_three")
        await self.rotate(client, shop, secret="shpss_four")
        assert (await paid(client, shop, secret="shpss_two")).status_code == 401
        assert (await paid(client, shop, secret="shpss_three")).status_code == 200

    async def test_a_store_without_a_secret_gets_one(self, client: Client) -> None:
        bare = await make_store(client)
        assert (await paid(client, bare)).status_code == 401
        rotated = await self.rotate(client, bare, secret=SHOPIFY_SECRET)
        assert rotated.json() == {"platform": "shopify", "previous_valid_until": None}
        assert (await paid(client, bare)).status_code == 200

    async def test_operator_only_and_validated(self, client: Client, shop: StoreCreated) -> None:
        url = f"/v1/admin/stores/{shop.store_id}/platform-secrets"
        assert (await client.post(url, json={"platform": "shopify", "secret": "x"})).status_code == 401
        bad = await client.post(url, json={"platform": "magento", "secret": "x"}, headers=ADMIN)
        assert bad.status_code == 422
        missing = await client.post(
            "/v1/admin/stores/st_nope/platform-secrets",
            json={"platform": "shopify", "secret": "x"},
            headers=ADMIN,
        )
        assert missing.status_code == 404

    async def test_default_grace_covers_shopifys_retries(self, client: Client, shop: StoreCreated) -> None:
        response = await self.rotate(client, shop, secret="shpss_next")
        until = datetime.fromisoformat(response.json()["previous_valid_until"])
        assert DEFAULT_GRACE_SECONDS == 48 * 3600
        assert timedelta(hours=47) < until - datetime.now(UTC) <= timedelta(hours=48)


async def standard(
    client: Client, shop: StoreCreated, secret: str, at: datetime | None = None
) -> httpx.Response:
    """A customer.upserted signed with `secret` at `at` (default now)."""
    body = msgspec.json.encode({"type": "customer.upserted", "data": make_customer()})
    headers = signed_headers(secret, body, at=None if at is None else int(at.timestamp()))
    return await client.post(f"/v1/hooks/standard/{shop.store_id}", content=body, headers=headers)


class TestStandardSecretRotation:
    async def rotate(self, client: Client, shop: StoreCreated, **body: Any) -> httpx.Response:
        return await rotate(client, shop, body.pop("platform", "standard"), **body)

    async def test_patron_makes_the_new_secret_and_both_verify_during_the_grace(
        self, client: Client, shop: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        old = shop.webhook_secret
        assert (await standard(client, shop, old)).status_code == 200  # the route has cached the store
        response = await self.rotate(client, shop, grace_seconds=3600)
        assert response.status_code == 200, response.text
        new = response.json()["secret"]
        assert is_secret(new)
        assert new != old
        assert (await standard(client, shop, new)).status_code == 200
        assert (await standard(client, shop, old)).status_code == 200
        later = datetime.now(UTC) + timedelta(hours=2)
        monkeypatch.setattr(runtime, "clock", lambda: later)
        assert (await standard(client, shop, new, at=later)).status_code == 200
        refused = await standard(client, shop, old, at=later)
        assert refused.status_code == 401
        assert refused.json()["type"] == "urn:patron:problem:invalid-signature"

    async def test_a_given_secret_is_used_and_checked(self, client: Client, shop: StoreCreated) -> None:
        given = signing.new_secret()
        response = await self.rotate(client, shop, secret=given, grace_seconds=0)
        assert response.json() == {"platform": "standard", "previous_valid_until": None}
        assert (await standard(client, shop, given)).status_code == 200
        assert (await standard(client, shop, shop.webhook_secret)).status_code == 401
        for bad in ("whsec_not*base64", "whsec_" + "QUJD", "plain-secret"):
            rejected = await self.rotate(client, shop, secret=bad)
            assert rejected.status_code == 422
            assert rejected.json()["errors"][0]["field"] == "secret"

    async def test_shopify_and_woocommerce_need_the_secret_they_issued(
        self, client: Client, shop: StoreCreated
    ) -> None:
        for platform in ("shopify", "woocommerce"):
            rejected = await self.rotate(client, shop, platform=platform)
            assert rejected.status_code == 422
            assert rejected.json()["errors"][0]["field"] == "secret"
