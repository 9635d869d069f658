"""Operator endpoints: creating stores, rotating and revoking keys (here and on another replica)."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
import pytest

from loyalty.stores import KeyIssued, Scope, StoreCreated
from plugin.runtime import Runtime
from tests.conftest import ADMIN, bearer, eventually, make_store
from tests.plugin.conftest import Client


async def me_status(client: Client, api_key: str) -> int:
    return (await client.get("/v1/me", headers=bearer(api_key))).status_code


async def key_id(client: Client, api_key: str) -> str:
    response = await client.get("/v1/me", headers=bearer(api_key))
    assert response.status_code == 200, response.text
    value: str = response.json()["key_id"]
    return value


async def rotate(client: Client, store_id: str, scope: Scope, grace_seconds: int) -> KeyIssued:
    response = await client.post(
        f"/v1/admin/stores/{store_id}/keys",
        json={"scope": scope.value, "grace_seconds": grace_seconds},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    return msgspec.convert(response.json(), KeyIssued)


async def revoke(client: Client, store_id: str, kid: str) -> int:
    return (await client.delete(f"/v1/admin/stores/{store_id}/keys/{kid}", headers=ADMIN)).status_code


async def refused(client: Client, api_key: str) -> bool:
    return await me_status(client, api_key) == 401


class TestCreateStore:
    async def test_a_store_gets_four_scoped_keys_and_a_webhook_secret(
        self, client: Client, runtime: Runtime
    ) -> None:
        store = await make_store(client, platform_secrets={"shopify": "shpss_x"})
        assert set(store.api_keys) == set(Scope)
        assert all(key.startswith(f"pk_{scope.value}_") for scope, key in store.api_keys.items())
        assert len(set(store.api_keys.values())) == 4
        assert store.webhook_secret.startswith("whsec_")
        async with runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT scope, secret_hash FROM api_keys WHERE store_id = $1", store.store_id
            )
        # Only hashes are kept: the key itself appears nowhere in the row.
        assert {r["scope"]: bytes(r["secret_hash"]) for r in rows} == {
            scope.value: hashlib.sha256(key.encode()).digest() for scope, key in store.api_keys.items()
        }

    async def test_an_unknown_platform_secret_is_422(self, client: Client) -> None:
        response = await client.post(
            "/v1/admin/stores", json={"name": "x", "platform_secrets": {"magento": "s"}}, headers=ADMIN
        )
        assert response.status_code == 422


class TestRotation:
    async def test_without_grace_the_old_key_stops_at_once(self, client: Client, store: StoreCreated) -> None:
        old = store.api_keys[Scope.marketer]
        assert await me_status(client, old) == 200  # now cached
        new = await rotate(client, store.store_id, Scope.marketer, grace_seconds=0)
        assert await me_status(client, old) == 401
        assert (await client.get("/v1/me", headers=bearer(new.api_key))).json()["key_id"] == new.key_id
        # Other scopes are untouched.
        for scope in (Scope.storefront, Scope.channel, Scope.app):
            assert await me_status(client, store.api_keys[scope]) == 200

    async def test_without_grace_the_old_key_stops_on_another_replica(
        self, client: Client, replica: Client, store: StoreCreated
    ) -> None:
        old = store.api_keys[Scope.channel]
        assert await me_status(replica, old) == 200  # cached over there
        await rotate(client, store.store_id, Scope.channel, grace_seconds=0)
        assert await eventually(lambda: refused(replica, old))

    async def test_the_old_key_works_during_the_grace_and_not_after(
        self, client: Client, runtime: Runtime, store: StoreCreated
    ) -> None:
        old = store.api_keys[Scope.app]
        new = await rotate(client, store.store_id, Scope.app, grace_seconds=1)
        during = await client.get("/v1/me", headers=bearer(old))
        assert during.status_code == 200
        assert during.json()["expires_at"] is not None
        assert (await client.get("/v1/me", headers=bearer(new.api_key))).json()["expires_at"] is None
        async with runtime.pool.acquire() as conn:
            left = await conn.fetchval(
                "SELECT extract(epoch FROM expires_at - clock_timestamp())::float8"
                " FROM api_keys WHERE key_id = $1",
                during.json()["key_id"],
            )
        assert 0 < left <= 1
        await asyncio.sleep(left + 0.05)
        assert await me_status(client, old) == 401
        assert await me_status(client, new.api_key) == 200

    async def test_rotating_twice_keeps_the_earlier_expiry(
        self, client: Client, runtime: Runtime, store: StoreCreated
    ) -> None:
        first = await rotate(client, store.store_id, Scope.storefront, grace_seconds=0)
        await rotate(client, store.store_id, Scope.storefront, grace_seconds=3600)
        assert await me_status(client, store.api_keys[Scope.storefront]) == 401
        assert await me_status(client, first.api_key) == 200

    async def test_another_store_keys_are_untouched(self, client: Client, store: StoreCreated) -> None:
        other = await make_store(client, name="Other shop")
        await rotate(client, store.store_id, Scope.marketer, grace_seconds=0)
        assert await me_status(client, other.api_keys[Scope.marketer]) == 200

    async def test_an_unknown_store_is_404(self, client: Client) -> None:
        response = await client.post(
            "/v1/admin/stores/st_nope/keys", json={"scope": "app", "grace_seconds": 0}, headers=ADMIN
        )
        assert response.status_code == 404
        assert response.json()["type"] == "urn:patron:problem:not-found"

    @pytest.mark.parametrize(
        "body", [{"scope": "admin"}, {"scope": "app", "grace_seconds": -1}, {"scope": "app", "extra": 1}]
    )
    async def test_a_bad_request_is_422(
        self, client: Client, store: StoreCreated, body: dict[str, object]
    ) -> None:
        response = await client.post(f"/v1/admin/stores/{store.store_id}/keys", json=body, headers=ADMIN)
        assert response.status_code == 422


class TestRevocation:
    async def test_a_revoked_key_stops_at_once_here_and_on_another_replica(
        self, client: Client, replica: Client, store: StoreCreated
    ) -> None:
        api_key = store.api_keys[Scope.storefront]
        assert await me_status(client, api_key) == 200
        assert await me_status(replica, api_key) == 200
        assert await revoke(client, store.store_id, await key_id(client, api_key)) == 204
        assert await me_status(client, api_key) == 401
        assert await eventually(lambda: refused(replica, api_key))
        assert await me_status(client, store.api_keys[Scope.app]) == 200

    async def test_revoking_twice_is_404(self, client: Client, store: StoreCreated) -> None:
        kid = await key_id(client, store.api_keys[Scope.app])
        assert await revoke(client, store.store_id, kid) == 204
        assert await revoke(client, store.store_id, kid) == 404

    async def test_a_key_cannot_be_revoked_through_another_store(
        self, client: Client, store: StoreCreated
    ) -> None:
        other = await make_store(client, name="Other shop")
        kid = await key_id(client, store.api_keys[Scope.app])
        assert await revoke(client, other.store_id, kid) == 404
        assert await me_status(client, store.api_keys[Scope.app]) == 200
