"""Members: identity, profile fields, tier state and the kept balance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import msgspec

from loyalty.repository import Connection, unnest_columns


class MemberRow(msgspec.Struct, frozen=True, kw_only=True):
    store_id: str
    customer_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    birthday: date | None
    marketing_consent: bool
    tier_code: str
    tier_since: datetime
    below_since: datetime | None
    balance: int
    orders_count: int
    created_at: datetime
    updated_at: datetime


# A newer snapshot (by the platform's updated_at) wins; one without a time always applies.
_UPSERT_PROFILE = """
INSERT INTO members AS m (store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
                          source_updated_at, tier_code, tier_since)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (store_id, customer_id) DO UPDATE SET
    email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    birthday = EXCLUDED.birthday, marketing_consent = EXCLUDED.marketing_consent,
    source_updated_at = coalesce(EXCLUDED.source_updated_at, m.source_updated_at), updated_at = now()
WHERE m.erased_at IS NULL AND (m.source_updated_at IS NULL OR EXCLUDED.source_updated_at IS NULL
       OR EXCLUDED.source_updated_at >= m.source_updated_at)
RETURNING store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
    tier_code, tier_since, below_since, balance, orders_count, created_at, updated_at
"""
# For an order's embedded customer: create the member from it, or lock the existing one and
# overwrite its profile only with a snapshot that says it is newer (an order without an updated_at
# never clobbers a fresher customer event). DO UPDATE without a WHERE always returns the row and
# holds its lock, as SELECT … FOR UPDATE would: one round trip instead of lock, upsert, lock again.
_NEWER = """(m.erased_at IS NULL AND EXCLUDED.source_updated_at IS NOT NULL
       AND (m.source_updated_at IS NULL OR EXCLUDED.source_updated_at >= m.source_updated_at))"""
# Members in key order (the lock order of every multi-member change), so two batches never deadlock.
_UPSERT_LOCKED = f"""
INSERT INTO members AS m (store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
                          source_updated_at, tier_code, tier_since)
SELECT $1, c.customer_id, c.email, c.first_name, c.last_name, c.birthday, c.marketing_consent,
       c.source_updated_at, $9, $10
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::date[], $7::bool[], $8::timestamptz[])
    AS c (customer_id, email, first_name, last_name, birthday, marketing_consent, source_updated_at)
ORDER BY c.customer_id
ON CONFLICT (store_id, customer_id) DO UPDATE SET
    email = CASE WHEN {_NEWER} THEN EXCLUDED.email ELSE m.email END,
    first_name = CASE WHEN {_NEWER} THEN EXCLUDED.first_name ELSE m.first_name END,
    last_name = CASE WHEN {_NEWER} THEN EXCLUDED.last_name ELSE m.last_name END,
    birthday = CASE WHEN {_NEWER} THEN EXCLUDED.birthday ELSE m.birthday END,
    marketing_consent = CASE WHEN {_NEWER} THEN EXCLUDED.marketing_consent ELSE m.marketing_consent END,
    source_updated_at = CASE WHEN {_NEWER} THEN EXCLUDED.source_updated_at ELSE m.source_updated_at END,
    updated_at = CASE WHEN {_NEWER} THEN now() ELSE m.updated_at END
RETURNING store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
    tier_code, tier_since, below_since, balance, orders_count, created_at, updated_at
"""  # noqa: S608 - constants only
_LOCK = """
SELECT store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
    tier_code, tier_since, below_since, balance, orders_count, created_at, updated_at
FROM members WHERE store_id = $1 AND customer_id = $2 FOR UPDATE
"""
_GET = """
SELECT store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
    tier_code, tier_since, below_since, balance, orders_count, created_at, updated_at
FROM members WHERE store_id = $1 AND customer_id = $2
"""
_FIND = _GET.rstrip() + " AND erased_at IS NULL\n"
_LOCK_LIVE = _FIND + "FOR UPDATE\n"
_ADD_BALANCE = """
UPDATE members SET balance = balance + $3, updated_at = now() WHERE store_id = $1 AND customer_id = $2
RETURNING balance
"""
_COUNT_ORDER = """
UPDATE members SET orders_count = orders_count + $3, updated_at = now()
WHERE store_id = $1 AND customer_id = $2
"""


async def upsert_profile(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    birthday: date | None,
    marketing_consent: bool,
    source_updated_at: datetime | None,
    tier_code: str,
    now: datetime,
) -> bool:
    """Create or update a member's profile; False when the snapshot was older than what is kept."""
    row = await conn.fetchrow(
        _UPSERT_PROFILE,
        store_id,
        customer_id,
        email,
        first_name,
        last_name,
        birthday,
        marketing_consent,
        source_updated_at,
        tier_code,
        now,
    )
    return row is not None


class MemberSnapshot(msgspec.Struct, frozen=True):
    """A member as an order or a platform describes them; `source_updated_at` says how new."""

    customer_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    birthday: date | None
    marketing_consent: bool
    source_updated_at: datetime | None


async def upsert_locked(
    conn: Connection, *, store_id: str, members: Sequence[MemberSnapshot], tier_code: str, now: datetime
) -> dict[str, MemberRow]:
    """The members by id, row-locked (in key order): each created from its snapshot (on
    `tier_code`) if new, else updated only by a newer snapshot. Ids must be distinct."""
    columns = unnest_columns(
        [msgspec.structs.astuple(member) for member in members], len(MemberSnapshot.__struct_fields__)
    )
    rows = await conn.fetch(_UPSERT_LOCKED, store_id, *columns, tier_code, now)
    found = msgspec.convert(rows, list[MemberRow], from_attributes=True)
    return {member.customer_id: member for member in found}


async def lock(conn: Connection, *, store_id: str, customer_id: str) -> MemberRow | None:
    """The member row, locked until the transaction ends: every ledger change takes this lock first."""
    row = await conn.fetchrow(_LOCK, store_id, customer_id)
    return None if row is None else msgspec.convert(row, MemberRow, from_attributes=True)


async def get(conn: Connection, *, store_id: str, customer_id: str) -> MemberRow | None:
    row = await conn.fetchrow(_GET, store_id, customer_id)
    return None if row is None else msgspec.convert(row, MemberRow, from_attributes=True)


async def find(conn: Connection, *, store_id: str, customer_id: str) -> MemberRow | None:
    """The member, unless unknown or erased; not locked."""
    row = await conn.fetchrow(_FIND, store_id, customer_id)
    return None if row is None else msgspec.convert(row, MemberRow, from_attributes=True)


async def lock_live(conn: Connection, *, store_id: str, customer_id: str) -> MemberRow | None:
    """Like `lock`, but None for an erased member too: member-facing writes do not touch those."""
    row = await conn.fetchrow(_LOCK_LIVE, store_id, customer_id)
    return None if row is None else msgspec.convert(row, MemberRow, from_attributes=True)


async def add_balance(conn: Connection, *, store_id: str, customer_id: str, points: int) -> int:
    balance: int = await conn.fetchval(_ADD_BALANCE, store_id, customer_id, points)
    return balance


async def count_order(conn: Connection, *, store_id: str, customer_id: str, delta: int) -> None:
    await conn.execute(_COUNT_ORDER, store_id, customer_id, delta)


class VersionRow(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    program_version: int


# The profile cache's freshness check: one primary-key lookup (see plugin/profile_cache.py).
_VERSION = """
SELECT m.version, s.program_version FROM members m JOIN stores s ON s.store_id = m.store_id
WHERE m.store_id = $1 AND m.customer_id = $2 AND m.erased_at IS NULL
"""
# When the view of a member changes by the clock alone, with no write: pending points become
# available, a lot enters the expiring window or expires, an order or earning leaves the tier
# window, an open case's promise falls due, a care suggestion expires or comes out of the quiet
# hours. least() skips the nulls.
_VALID_UNTIL = """
SELECT least(
    (SELECT min(available_at) FROM point_lots
     WHERE store_id = $1 AND customer_id = $2 AND remaining > 0 AND available_at > $3),
    (SELECT min(expires_at) FROM point_lots
     WHERE store_id = $1 AND customer_id = $2 AND remaining > 0 AND expires_at > $3),
    (SELECT min(expires_at) - $4::interval FROM point_lots
     WHERE store_id = $1 AND customer_id = $2 AND remaining > 0 AND expires_at > $3 + $4::interval),
    (SELECT min(placed_at) FROM orders WHERE store_id = $1 AND customer_id = $2 AND placed_at > $3),
    (SELECT min(placed_at) + make_interval(days => $5) FROM orders
     WHERE store_id = $1 AND customer_id = $2 AND placed_at > $3 - make_interval(days => $5)),
    (SELECT min(due) FROM cases, LATERAL (VALUES (first_response_due), (resolution_due)) AS d (due)
     WHERE store_id = $1 AND customer_id = $2 AND status IN ('open', 'pending') AND due > $3),
    (SELECT min(moment) FROM care_actions, LATERAL (VALUES (deliver_after), (expires_at)) AS d (moment)
     WHERE store_id = $1 AND customer_id = $2 AND acted_at IS NULL AND moment > $3)
)
"""


_VERSIONS = """
SELECT k.i, m.version, s.program_version
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k (store_id, customer_id, i)
JOIN members m ON m.store_id = k.store_id AND m.customer_id = k.customer_id AND m.erased_at IS NULL
JOIN stores s ON s.store_id = m.store_id
"""


async def versions(conn: Connection, *, keys: Sequence[tuple[str, str]]) -> list[VersionRow | None]:
    """`version` of each (store_id, customer_id), in order, in one statement."""
    found: list[VersionRow | None] = [None] * len(keys)
    rows = await conn.fetch(_VERSIONS, [key[0] for key in keys], [key[1] for key in keys])
    for index, member_version, program_version in rows:
        found[index - 1] = VersionRow(version=member_version, program_version=program_version)
    return found


async def version(conn: Connection, *, store_id: str, customer_id: str) -> VersionRow | None:
    """The member's version and the store's live program version; None if unknown or erased."""
    row = await conn.fetchrow(_VERSION, store_id, customer_id)
    return None if row is None else VersionRow(version=row[0], program_version=row[1])


async def valid_until(
    conn: Connection,
    *,
    store_id: str,
    customer_id: str,
    now: datetime,
    expiring_within: timedelta,
    window_days: int,
) -> datetime | None:
    """The first moment after `now` when the member's view changes without a write (None: never)."""
    value: datetime | None = await conn.fetchval(
        _VALID_UNTIL, store_id, customer_id, now, expiring_within, window_days
    )
    return value


class MemberListRow(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    tier_code: str
    tier_since: datetime
    balance: int
    orders_count: int
    updated_at: datetime


# Keyset on the primary key. The search is a prefix of the customer id or of the email, so a
# marketer can type either; LIKE's wildcards in the search are escaped by `_like_prefix`.
_LIST = """
SELECT customer_id, email, first_name, last_name, tier_code, tier_since, balance, orders_count, updated_at
FROM members
WHERE store_id = $1 AND erased_at IS NULL
  AND ($2::text IS NULL OR customer_id > $2)
  AND ($3::text IS NULL OR tier_code = $3)
  AND ($4::text IS NULL OR customer_id LIKE $4 OR lower(email) LIKE lower($4))
ORDER BY customer_id
LIMIT $5
"""


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def page(
    conn: Connection,
    *,
    store_id: str,
    search: str | None,
    tier_code: str | None,
    after: str | None,
    limit: int,
) -> list[MemberListRow]:
    """Up to `limit` members after the customer id `after`, by customer id, not erased; `search`
    is a prefix of the customer id or (case-insensitively) of the email."""
    pattern = None if search is None else _like_prefix(search)
    rows = await conn.fetch(_LIST, store_id, after, tier_code, pattern, limit)
    return msgspec.convert(rows, list[MemberListRow], from_attributes=True)
