"""A store's webhook secrets (current and, during a rotation, previous) and REST credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loyalty.repository import Connection

# SET expressions all see the row as it was: the outgoing current secret becomes the previous one.
# The standard (Standard Webhooks) secret is the `webhook_secret` column; the platforms' are keys of
# `platform_secrets`.
_ROTATE = """
UPDATE stores SET
    previous_platform_secrets = CASE
        WHEN $4::timestamptz IS NULL THEN previous_platform_secrets - $2::text
        WHEN $2::text = 'standard' THEN previous_platform_secrets || jsonb_build_object(
            'standard', jsonb_build_object('secret', webhook_secret, 'valid_until', $4::timestamptz))
        WHEN platform_secrets ? $2::text THEN previous_platform_secrets || jsonb_build_object(
            $2::text,
            jsonb_build_object('secret', platform_secrets ->> $2::text, 'valid_until', $4::timestamptz))
        ELSE previous_platform_secrets - $2::text
    END,
    platform_secrets = CASE
        WHEN $2::text = 'standard' THEN platform_secrets
        ELSE platform_secrets || jsonb_build_object($2::text, $3::text)
    END,
    webhook_secret = CASE WHEN $2::text = 'standard' THEN $3::text ELSE webhook_secret END
WHERE store_id = $1
RETURNING previous_platform_secrets -> $2::text ->> 'valid_until'
"""
_PREVIOUS = """
SELECT previous_platform_secrets -> $2::text ->> 'secret' FROM stores
WHERE store_id = $1 AND (previous_platform_secrets -> $2::text ->> 'valid_until')::timestamptz > $3
"""
_SET_API = """
UPDATE stores SET platform_api = platform_api || jsonb_build_object($2::text, $3::jsonb)
WHERE store_id = $1
RETURNING store_id
"""
_API = "SELECT platform_api -> $2::text FROM stores WHERE store_id = $1"


async def rotate_secret(
    conn: Connection, *, store_id: str, platform: str, secret: str, previous_until: datetime | None
) -> tuple[bool, bool]:
    """Make `secret` current; the outgoing one stays valid until `previous_until` (None: not at all).

    Returns (store found, a previous secret is kept).
    """
    row = await conn.fetchrow(_ROTATE, store_id, platform, secret, previous_until)
    return row is not None, row is not None and row[0] is not None


async def previous_secret(conn: Connection, *, store_id: str, platform: str, now: datetime) -> str | None:
    """The secret a rotation replaced, while it is still valid."""
    secret: str | None = await conn.fetchval(_PREVIOUS, store_id, platform, now)
    return secret


async def set_api(conn: Connection, *, store_id: str, platform: str, credentials: dict[str, Any]) -> bool:
    """Store a platform's REST credentials; False when there is no such store."""
    return await conn.fetchval(_SET_API, store_id, platform, credentials) is not None


async def api(conn: Connection, *, store_id: str, platform: str) -> dict[str, Any] | None:
    """A platform's REST credentials as stored, or None."""
    credentials: dict[str, Any] | None = await conn.fetchval(_API, store_id, platform)
    return credentials
