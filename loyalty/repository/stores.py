"""Stores and their API keys."""

from __future__ import annotations

from datetime import datetime

import msgspec

from loyalty.repository import Connection


class StoreRow(msgspec.Struct, frozen=True, kw_only=True):
    store_id: str
    name: str
    currency: str
    timezone: str
    webhook_secret: str
    platform_secrets: dict[str, str]
    created_at: datetime


class KeyRow(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    store_id: str
    scope: str
    expires_at: datetime | None


_INSERT_STORE = """
INSERT INTO stores (store_id, name, currency, timezone, webhook_secret, platform_secrets)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING store_id, name, currency, timezone, webhook_secret, platform_secrets, created_at
"""
_SELECT_STORE = """
SELECT store_id, name, currency, timezone, webhook_secret, platform_secrets, created_at
FROM stores WHERE store_id = $1
"""
_SELECT_MEMBER_TOKEN_SECRET = "SELECT member_token_secret FROM stores WHERE store_id = $1"  # noqa: S105
_INSERT_KEY = """
INSERT INTO api_keys (key_id, store_id, scope, secret_hash) VALUES ($1, $2, $3, $4)
"""
_SELECT_LIVE_KEY = """
SELECT key_id, store_id, scope, expires_at
FROM api_keys
WHERE secret_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""
_EXPIRE_SCOPE_KEYS = """
UPDATE api_keys SET expires_at = now() + make_interval(secs => $3)
WHERE store_id = $1 AND scope = $2 AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > now() + make_interval(secs => $3))
RETURNING secret_hash
"""
_REVOKE_KEY = """
UPDATE api_keys SET revoked_at = now()
WHERE store_id = $1 AND key_id = $2 AND revoked_at IS NULL
RETURNING encode(secret_hash, 'hex') AS secret_hash
"""


async def insert_store(
    conn: Connection,
    *,
    store_id: str,
    name: str,
    currency: str,
    timezone: str,
    webhook_secret: str,
    platform_secrets: dict[str, str],
) -> StoreRow:
    row = await conn.fetchrow(
        _INSERT_STORE, store_id, name, currency, timezone, webhook_secret, platform_secrets
    )
    return msgspec.convert(row, StoreRow, from_attributes=True)


async def get_store(conn: Connection, *, store_id: str) -> StoreRow | None:
    row = await conn.fetchrow(_SELECT_STORE, store_id)
    return None if row is None else msgspec.convert(row, StoreRow, from_attributes=True)


async def member_token_secret(conn: Connection, *, store_id: str) -> bytes | None:
    """The key member tokens of the store are signed with; None for an unknown store."""
    secret: bytes | None = await conn.fetchval(_SELECT_MEMBER_TOKEN_SECRET, store_id)
    return secret


async def insert_key(conn: Connection, *, key_id: str, store_id: str, scope: str, secret_hash: bytes) -> None:
    await conn.execute(_INSERT_KEY, key_id, store_id, scope, secret_hash)


async def find_live_key(conn: Connection, *, secret_hash: bytes) -> KeyRow | None:
    row = await conn.fetchrow(_SELECT_LIVE_KEY, secret_hash)
    return None if row is None else msgspec.convert(row, KeyRow, from_attributes=True)


async def expire_scope_keys(
    conn: Connection, *, store_id: str, scope: str, grace_seconds: float
) -> list[bytes]:
    """Give the scope's live keys an expiry (keeping an earlier one); return the hashes of those changed."""
    rows = await conn.fetch(_EXPIRE_SCOPE_KEYS, store_id, scope, grace_seconds)
    return [bytes(row["secret_hash"]) for row in rows]


async def revoke_key(conn: Connection, *, store_id: str, key_id: str) -> bytes | None:
    """Revoke a key; return its hash (for cache eviction), or None when no live key matched."""
    hex_hash = await conn.fetchval(_REVOKE_KEY, store_id, key_id)
    return None if hex_hash is None else bytes.fromhex(hex_hash)
