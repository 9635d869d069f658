"""Idempotency keys: claimed first, completed with the response in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from loyalty.repository import Connection


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    request_hash: bytes
    status_code: int
    response: Any


# The placeholder row (status 0) is never seen by others: it is completed before the transaction
# commits, or it disappears with it. A concurrent claim of the same key waits on the unique index
# until this transaction ends, then finds the completed row (or claims the key itself).
_CLAIM = """
INSERT INTO idempotency_keys (store_id, scope, key, request_hash, status_code, response)
VALUES ($1, $2, $3, $4, 0, 'null'::jsonb)
ON CONFLICT (store_id, scope, key) DO NOTHING
RETURNING key
"""
_GET = """
SELECT request_hash, status_code, response FROM idempotency_keys
WHERE store_id = $1 AND scope = $2 AND key = $3
"""
_COMPLETE = """
UPDATE idempotency_keys SET status_code = $4, response = $5
WHERE store_id = $1 AND scope = $2 AND key = $3
"""
_PURGE = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2
))
"""


async def claim(conn: Connection, *, store_id: str, scope: str, key: str, request_hash: bytes) -> bool:
    """Take the key for this transaction; False when it is already used (then read it with `get`)."""
    return await conn.fetchval(_CLAIM, store_id, scope, key, request_hash) is not None


async def get(conn: Connection, *, store_id: str, scope: str, key: str) -> StoredResponse | None:
    row = await conn.fetchrow(_GET, store_id, scope, key)
    return None if row is None else msgspec.convert(row, StoredResponse, from_attributes=True)


async def complete(
    conn: Connection, *, store_id: str, scope: str, key: str, status_code: int, response: Any
) -> None:
    await conn.execute(_COMPLETE, store_id, scope, key, status_code, response)


async def purge(conn: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` keys created before `before`; returns how many."""
    status = await conn.execute(_PURGE, before, limit)
    return int(status.rsplit(" ", 1)[-1])
