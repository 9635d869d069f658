"""Program versions and each store's live version (stores.program_version)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from loyalty.program import Program
from loyalty.repository import Connection, orders

_SELECT_LIVE_VERSION = "SELECT program_version FROM stores WHERE store_id = $1"
# The live version with its row's xmin: a token no other row of (store, version) can share, not even
# one written by a transaction that rolled back, so a cache keyed by it cannot serve a ghost.
_SELECT_LIVE = """
SELECT s.program_version AS version, p.xmin::text AS token
FROM stores s
LEFT JOIN programs p ON p.store_id = s.store_id AND p.version = s.program_version
WHERE s.store_id = $1
"""
# The same, taking orders' key locks (orders.LOCK_KEYS) on the way, in the order
# given: ingestion of order events needs both first, and one round trip serves. Evaluated for the
# one stores row (no store: no lock, and NotFound anyway); held before any later statement of the
# transaction starts, which is what the orders' lock protocol relies on.
_SELECT_LIVE_LOCKING_ORDERS = f"""
SELECT s.program_version AS version, p.xmin::text AS token, {orders.LOCK_KEYS} AS order_keys
FROM stores s
LEFT JOIN programs p ON p.store_id = s.store_id AND p.version = s.program_version
WHERE s.store_id = $1
"""  # noqa: S608 - constants only
# Text, not jsonb: msgspec decodes it straight into the Program Structs.
_SELECT_DOCUMENT = "SELECT document::text FROM programs WHERE store_id = $1 AND version = $2"
# The compare-and-set that makes If-Match safe: concurrent publishers serialise on the store row
# and all but one find the version moved on.
_ADVANCE_VERSION = """
UPDATE stores SET program_version = program_version + 1
WHERE store_id = $1 AND program_version = $2
RETURNING program_version
"""
_INSERT = """
INSERT INTO programs (store_id, version, document, created_at, created_by)
VALUES ($1, $2, $3::text::jsonb, $4, $5)
"""
# Serialises store-wide tier passes (publish, the daily job) of one store, so two set-based
# UPDATEs over the same members never wait on each other's row locks in opposite orders.
_LOCK_TIER_PASSES = "SELECT pg_advisory_xact_lock(hashtextextended('patron:tiers:' || $1, 0))"

# What a preview reports beside the tier moves: the points members hold (a debt is no liability)
# and the median eligible subtotal of recent paid orders.
_POINTS_OUTSTANDING = """
SELECT coalesce(sum(greatest(balance, 0)), 0)::bigint
FROM members WHERE store_id = $1 AND erased_at IS NULL
"""
_MEDIAN_SUBTOTAL = """
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY subtotal)
FROM orders
WHERE store_id = $1 AND status = 'paid'
  AND placed_at > $2::timestamptz - make_interval(days => $3::int) AND placed_at <= $2::timestamptz
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Program).decode


async def live_version(conn: Connection, *, store_id: str) -> int | None:
    """The store's live program version (0: the default, never published); None: no such store."""
    version: int | None = await conn.fetchval(_SELECT_LIVE_VERSION, store_id)
    return version


class LiveVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    """0 for the default program, never published."""
    token: str | None
    """Identifies the programs row (None for version 0)."""


async def live(conn: Connection, *, store_id: str, lock_orders: Sequence[str] = ()) -> LiveVersion | None:
    """The store's live version and its row token, in one primary-key lookup each; None: no store.

    With `lock_orders`, also takes those orders' key locks (`orders.lock_order_keys`) first, in
    sorted order: two transactions locking several orders each never wait on each other in a cycle.
    """
    if lock_orders:
        row = await conn.fetchrow(_SELECT_LIVE_LOCKING_ORDERS, store_id, sorted(set(lock_orders)))
    else:
        row = await conn.fetchrow(_SELECT_LIVE, store_id)
    return None if row is None else msgspec.convert(row, LiveVersion, from_attributes=True)


async def get_document(conn: Connection, *, store_id: str, version: int) -> Program | None:
    """The document of one version, with `version` set."""
    text = await conn.fetchval(_SELECT_DOCUMENT, store_id, version)
    if text is None:
        return None
    return msgspec.structs.replace(_decode(text), version=version)


async def advance_version(conn: Connection, *, store_id: str, expected_version: int) -> int | None:
    """Move the live version on by one if it is `expected_version`; the new version, else None."""
    version: int | None = await conn.fetchval(_ADVANCE_VERSION, store_id, expected_version)
    return version


async def insert(
    conn: Connection, *, store_id: str, version: int, program: Program, created_at: datetime, created_by: str
) -> None:
    # The version lives in its column; the stored document leaves it unset.
    document = _encode(msgspec.structs.replace(program, version=None)).decode()
    await conn.execute(_INSERT, store_id, version, document, created_at, created_by)


async def lock_tier_passes(conn: Connection, *, store_id: str) -> None:
    """Hold the store's tier-pass lock until the transaction ends."""
    await conn.execute(_LOCK_TIER_PASSES, store_id)


async def points_outstanding(conn: Connection, *, store_id: str) -> int:
    """Points held by the store's members (positive balances only)."""
    points: int = await conn.fetchval(_POINTS_OUTSTANDING, store_id)
    return points


async def median_subtotal(conn: Connection, *, store_id: str, now: datetime, days: int) -> int | None:
    """The median subtotal of paid orders placed in the `days` before `now`; None without orders."""
    median: int | None = await conn.fetchval(_MEDIAN_SUBTOTAL, store_id, now, days)
    return median
