"""Stores and their keys, below HTTP: creation, authentication, rotation and revocation."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from loyalty import stores
from loyalty.errors import InvalidInput, NotFound
from loyalty.repository import Connection
from loyalty.stores import Scope, StoreCreate, StoreCreated
from plugin.runtime import Runtime


def make_store_create(**overrides: Any) -> StoreCreate:
    fields: dict[str, Any] = {"name": "Corner shop", "currency": "EUR", "timezone": "Europe/Berlin"}
    return StoreCreate(**(fields | overrides))


@pytest.fixture
async def conn(runtime: Runtime) -> AsyncIterator[Connection]:
    async with runtime.pool.acquire() as conn:
        yield conn


async def created(conn: Connection, **overrides: Any) -> StoreCreated:
    return await stores.create_store(conn, make_store_create(**overrides))


def test_a_key_hash_is_the_sha256_of_the_whole_key() -> None:
    assert stores.hash_key("pk_app_abc") == hashlib.sha256(b"pk_app_abc").digest()


async def test_an_unknown_time_zone_is_refused_naming_the_field(conn: Connection) -> None:
    with pytest.raises(InvalidInput) as raised:
        await created(conn, name="Mars shop", timezone="Mars/Olympus_Mons")
    assert raised.value.extra == {"field": "timezone"}
    assert await conn.fetchval("SELECT count(*) FROM stores WHERE name = 'Mars shop'") == 0


async def test_each_key_authenticates_as_its_own_store_and_scope(conn: Connection) -> None:
    store = await created(conn)
    for scope, api_key in store.api_keys.items():
        principal = await stores.authenticate(conn, api_key)
        assert principal is not None
        assert (principal.store_id, principal.scope, principal.expires_at) == (store.store_id, scope, None)


async def test_the_scope_comes_from_the_row_not_the_key_text(conn: Connection) -> None:
    store = await created(conn)
    # A key whose text claims another scope still acts with the scope it was issued for.
    await conn.execute(
        "UPDATE api_keys SET secret_hash = $2 WHERE secret_hash = $1",
        stores.hash_key(store.api_keys[Scope.app]),
        stores.hash_key("pk_marketer_forged"),
    )
    principal = await stores.authenticate(conn, "pk_marketer_forged")
    assert principal is not None
    assert principal.scope is Scope.app


async def test_an_unknown_key_is_none(conn: Connection) -> None:
    assert await stores.authenticate(conn, "pk_app_never-issued") is None


class TestRotation:
    async def test_the_old_keys_get_the_grace_and_are_returned_for_eviction(self, conn: Connection) -> None:
        store = await created(conn)
        issued, expiring = await stores.rotate_key(
            conn, store_id=store.store_id, scope=Scope.channel, grace_seconds=3600
        )
        assert expiring == [stores.hash_key(store.api_keys[Scope.channel])]
        old = await stores.authenticate(conn, store.api_keys[Scope.channel])
        assert old is not None
        assert old.expires_at is not None
        left = await conn.fetchval("SELECT extract(epoch FROM $1 - now())::float8", old.expires_at)
        assert 3590 < left <= 3600
        new = await stores.authenticate(conn, issued.api_key)
        assert new is not None
        assert (new.key_id, new.scope, new.expires_at) == (issued.key_id, Scope.channel, None)

    async def test_with_no_grace_the_old_key_is_dead(self, conn: Connection) -> None:
        store = await created(conn)
        await stores.rotate_key(conn, store_id=store.store_id, scope=Scope.app, grace_seconds=0)
        assert await stores.authenticate(conn, store.api_keys[Scope.app]) is None

    async def test_a_key_already_expiring_sooner_keeps_its_expiry(self, conn: Connection) -> None:
        store = await created(conn)
        await stores.rotate_key(conn, store_id=store.store_id, scope=Scope.app, grace_seconds=60)
        _, expiring = await stores.rotate_key(
            conn, store_id=store.store_id, scope=Scope.app, grace_seconds=3600
        )
        assert stores.hash_key(store.api_keys[Scope.app]) not in expiring
        assert len(expiring) == 1

    async def test_an_unknown_store_is_not_found(self, conn: Connection) -> None:
        with pytest.raises(NotFound):
            await stores.rotate_key(conn, store_id="st_nope", scope=Scope.app, grace_seconds=0)


class TestRevocation:
    async def test_revoking_returns_the_hash_and_kills_the_key(self, conn: Connection) -> None:
        store = await created(conn)
        principal = await stores.authenticate(conn, store.api_keys[Scope.storefront])
        assert principal is not None
        key_hash = await stores.revoke_key(conn, store_id=store.store_id, key_id=principal.key_id)
        assert key_hash == stores.hash_key(store.api_keys[Scope.storefront])
        assert await stores.authenticate(conn, store.api_keys[Scope.storefront]) is None

    async def test_another_store_cannot_revoke_it(self, conn: Connection) -> None:
        store, other = await created(conn), await created(conn, name="Other shop")
        principal = await stores.authenticate(conn, store.api_keys[Scope.app])
        assert principal is not None
        with pytest.raises(NotFound):
            await stores.revoke_key(conn, store_id=other.store_id, key_id=principal.key_id)
        assert await stores.authenticate(conn, store.api_keys[Scope.app]) == principal
