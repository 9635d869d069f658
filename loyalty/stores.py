"""Stores (tenants) and the scoped API keys that act for them."""

from __future__ import annotations

import base64
import enum
import hashlib
import secrets
import zoneinfo
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from loyalty import programs
from loyalty.errors import InvalidInput, NotFound
from loyalty.repository import Connection
from loyalty.repository import stores as repo

KEY_PREFIX = "pk_"


class Scope(enum.StrEnum):
    """What a key may do; each store gets one key per scope."""

    storefront = "storefront"
    marketer = "marketer"
    channel = "channel"
    app = "app"


Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])]


class StoreCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new store (tenant)."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    currency: Currency = "EUR"
    timezone: Annotated[str, Meta(max_length=64, examples=["Europe/Berlin"])] = "UTC"
    platform_secrets: dict[Annotated[str, Meta(pattern="^(shopify|woocommerce)$")], str] = {}
    """Secrets the storefront platforms sign their webhooks with."""


class StoreCreated(msgspec.Struct, kw_only=True):
    """A created store with its keys. The keys are shown once; only their hashes are kept."""

    store_id: str
    api_keys: dict[Scope, str]
    webhook_secret: str
    """Standard Webhooks secret for `POST /v1/hooks/standard/{store_id}`."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who a verified API key or member token acts for."""

    store_id: str
    scope: Scope
    key_id: str
    expires_at: datetime | None = None
    """When the credential stops working: a rotated key's end of grace, a member token's expiry;
    null for a scope's current key."""
    customer_id: str | None = None
    """Set for a member token (scope `app`): the one member it may read and act for."""


class KeyIssued(msgspec.Struct, kw_only=True):
    key_id: str
    scope: Scope
    api_key: str


def hash_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def _new_key(scope: Scope) -> tuple[str, str]:
    # The scope is in the key so people can tell keys apart; it is not trusted: the row says the scope.
    return "key_" + secrets.token_hex(8), f"{KEY_PREFIX}{scope.value}_{secrets.token_urlsafe(32)}"


def _validate_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}", field="timezone") from None


async def _issue_key(conn: Connection, *, store_id: str, scope: Scope) -> KeyIssued:
    key_id, api_key = _new_key(scope)
    await repo.insert_key(
        conn, key_id=key_id, store_id=store_id, scope=scope.value, secret_hash=hash_key(api_key)
    )
    return KeyIssued(key_id=key_id, scope=scope, api_key=api_key)


async def create_store(conn: Connection, data: StoreCreate, *, now: datetime | None = None) -> StoreCreated:
    """A store with its keys and the default program published as version 1."""
    _validate_timezone(data.timezone)
    store_id = "st_" + secrets.token_hex(8)
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    await repo.insert_store(
        conn,
        store_id=store_id,
        name=data.name,
        currency=data.currency,
        timezone=data.timezone,
        webhook_secret=webhook_secret,
        platform_secrets=dict(data.platform_secrets),
    )
    keys = {scope: (await _issue_key(conn, store_id=store_id, scope=scope)).api_key for scope in Scope}
    await programs.publish_initial(conn, store_id=store_id, now=now or datetime.now(UTC))
    return StoreCreated(store_id=store_id, api_keys=keys, webhook_secret=webhook_secret)


async def authenticate(conn: Connection, api_key: str) -> Principal | None:
    row = await repo.find_live_key(conn, secret_hash=hash_key(api_key))
    if row is None:
        return None
    return Principal(
        store_id=row.store_id, scope=Scope(row.scope), key_id=row.key_id, expires_at=row.expires_at
    )


async def rotate_key(
    conn: Connection, *, store_id: str, scope: Scope, grace_seconds: float
) -> tuple[KeyIssued, list[bytes]]:
    """Issue a new key for the scope; the store's current keys of that scope expire after the grace.

    Also returns the hashes of the keys given an expiry, so callers can evict them from caches.
    """
    if await repo.get_store(conn, store_id=store_id) is None:
        raise NotFound(f"no store {store_id}")
    expiring = await repo.expire_scope_keys(
        conn, store_id=store_id, scope=scope.value, grace_seconds=grace_seconds
    )
    return await _issue_key(conn, store_id=store_id, scope=scope), expiring


async def revoke_key(conn: Connection, *, store_id: str, key_id: str) -> bytes:
    """Revoke a key at once; returns its hash so callers can evict it from caches."""
    secret_hash = await repo.revoke_key(conn, store_id=store_id, key_id=key_id)
    if secret_hash is None:
        raise NotFound(f"no live key {key_id} in store {store_id}")
    return secret_hash
