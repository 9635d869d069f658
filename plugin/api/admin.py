"""Operator endpoints (`PATRON_ADMIN_TOKEN`): stores and their keys."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from msgspec import Meta

from loyalty import stores
from loyalty.repository import Connection
from loyalty.stores import KeyIssued, Scope, StoreCreate, StoreCreated
from plugin.auth import EXCLUDE_FROM_AUTH, operator_guard, publish_revocation
from plugin.runtime import Runtime


class KeyRotation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Rotate a scope's key: a new key now, the old ones valid for `grace_seconds` more."""

    scope: Scope
    grace_seconds: Annotated[int, Meta(ge=0, le=30 * 86400)] = 86400


class AdminController(Controller):
    path = "/v1/admin"
    guards = [operator_guard]  # noqa: RUF012
    opt = {EXCLUDE_FROM_AUTH: True}  # noqa: RUF012
    tags = ["operator"]  # noqa: RUF012

    @post("/stores", status_code=HTTP_201_CREATED, summary="Create a store")
    async def create_store(
        self, conn: NamedDependency[Connection], data: JSONBody[StoreCreate]
    ) -> StoreCreated:
        """A store with a Standard Webhooks secret and one API key per scope (shown only here)."""
        return await stores.create_store(conn, data)

    @post("/stores/{store_id:str}/keys", status_code=HTTP_201_CREATED, summary="Rotate a key")
    async def rotate_key(
        self, runtime: NamedDependency[Runtime], store_id: FromPath[str], data: JSONBody[KeyRotation]
    ) -> KeyIssued:
        """A new key for the scope; the scope's previous keys expire after the grace period."""
        async with runtime.pool.acquire() as conn, conn.transaction():
            issued, expiring = await stores.rotate_key(
                conn, store_id=store_id, scope=data.scope, grace_seconds=data.grace_seconds
            )
        # Caches (here and on every replica) hold the old keys without their new expiry.
        for key_hash in expiring:
            runtime.keys.evict(key_hash)
            await publish_revocation(runtime.redis, key_hash)
        return issued

    @delete(
        "/stores/{store_id:str}/keys/{key_id:str}", status_code=HTTP_204_NO_CONTENT, summary="Revoke a key"
    )
    async def revoke_key(
        self, runtime: NamedDependency[Runtime], store_id: FromPath[str], key_id: FromPath[str]
    ) -> None:
        """Revoke a key at once, on every replica."""
        # Commit before telling other replicas, or one could re-read the key as live and cache it.
        async with runtime.pool.acquire() as conn, conn.transaction():
            key_hash = await stores.revoke_key(conn, store_id=store_id, key_id=key_id)
        runtime.keys.evict(key_hash)
        await publish_revocation(runtime.redis, key_hash)
