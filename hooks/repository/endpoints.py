"""Webhook endpoints: the URLs a store's outbound events go to."""

from __future__ import annotations

from datetime import datetime

import msgspec

from loyalty.repository import Connection


class EndpointRow(msgspec.Struct, frozen=True, kw_only=True):
    endpoint_id: str
    store_id: str
    url: str
    events: list[str]
    description: str | None
    secret: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = """endpoint_id, store_id, url, events, description, secret, enabled, disabled_reason,
    created_at, updated_at"""
_INSERT = f"""
INSERT INTO webhook_endpoints (endpoint_id, store_id, url, events, description, secret)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {_COLUMNS}
"""  # noqa: S608 - column list constant
_GET = f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE store_id = $1 AND endpoint_id = $2"  # noqa: S608
# Keyset pagination on (created_at, endpoint_id): stable under inserts, no OFFSET scans.
_LIST = f"""
SELECT {_COLUMNS} FROM webhook_endpoints
WHERE store_id = $1 AND ($2::timestamptz IS NULL OR (created_at, endpoint_id) > ($2, $3))
ORDER BY created_at, endpoint_id
LIMIT $4
"""  # noqa: S608
# A NULL argument keeps the column; re-enabling clears the reason Patron disabled it for.
_UPDATE = f"""
UPDATE webhook_endpoints SET
    url = coalesce($3, url),
    events = coalesce($4, events),
    description = CASE WHEN $5 THEN $6 ELSE description END,
    enabled = coalesce($7, enabled),
    disabled_reason = CASE WHEN $7 IS NULL THEN disabled_reason ELSE NULL END,
    updated_at = now()
WHERE store_id = $1 AND endpoint_id = $2
RETURNING {_COLUMNS}
"""  # noqa: S608
_DELETE = "DELETE FROM webhook_endpoints WHERE store_id = $1 AND endpoint_id = $2"
_DISABLE = """
UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
WHERE endpoint_id = $1
"""


async def insert(
    conn: Connection,
    *,
    endpoint_id: str,
    store_id: str,
    url: str,
    events: list[str],
    description: str | None,
    secret: str,
) -> EndpointRow:
    row = await conn.fetchrow(_INSERT, endpoint_id, store_id, url, events, description, secret)
    return msgspec.convert(row, EndpointRow, from_attributes=True)


async def get(conn: Connection, *, store_id: str, endpoint_id: str) -> EndpointRow | None:
    row = await conn.fetchrow(_GET, store_id, endpoint_id)
    return None if row is None else msgspec.convert(row, EndpointRow, from_attributes=True)


async def page(
    conn: Connection, *, store_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[EndpointRow]:
    """Up to `limit` endpoints after the keyset position `after`, oldest first."""
    created_at, endpoint_id = after if after is not None else (None, None)
    rows = await conn.fetch(_LIST, store_id, created_at, endpoint_id, limit)
    return msgspec.convert(rows, list[EndpointRow], from_attributes=True)


async def update(
    conn: Connection,
    *,
    store_id: str,
    endpoint_id: str,
    url: str | None,
    events: list[str] | None,
    set_description: bool,
    description: str | None,
    enabled: bool | None,
) -> EndpointRow | None:
    """Change the given fields (None: unchanged; `set_description` because None is a valid value)."""
    row = await conn.fetchrow(
        _UPDATE, store_id, endpoint_id, url, events, set_description, description, enabled
    )
    return None if row is None else msgspec.convert(row, EndpointRow, from_attributes=True)


async def delete(conn: Connection, *, store_id: str, endpoint_id: str) -> bool:
    """Delete an endpoint with its deliveries; False when there was none."""
    return str(await conn.execute(_DELETE, store_id, endpoint_id)) != "DELETE 0"


async def disable(conn: Connection, *, endpoint_id: str, reason: str) -> None:
    """Disable an endpoint on Patron's own initiative (the receiver said it is gone)."""
    await conn.execute(_DISABLE, endpoint_id, reason)
