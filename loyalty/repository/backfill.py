"""SQL of the set-based backfill: staging tables, then one statement per kind of row.

The staging tables are temporary and dropped at commit, so the caller's transaction is required.
Order lines skip staging: they are COPYed straight into `order_lines`, only for orders the same
transaction has just inserted, so they cannot conflict (see loyalty/backfill/).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import msgspec

from loyalty.repository import Connection

CustomerRecord = tuple[int, str, str | None, str | None, str | None, date | None, bool, datetime | None]
"""(line_no, customer_id, email, first_name, last_name, birthday, marketing_consent, updated_at)"""
ProductRecord = tuple[
    int, str, str | None, str | None, str | None, int | None, list[str], int | None, bool, datetime | None
]
"""(line_no, product_id, title, category, brand, price, tags, consumable_days, active, updated_at)"""
OrderRecord = tuple[str, str, str, int, int, datetime]
"""(order_id, customer_id, currency, subtotal, total, placed_at)"""
MemberRecord = tuple[str, str | None, str | None, str | None, date | None, bool]
"""(customer_id, email, first_name, last_name, birthday, marketing_consent)"""

LINE_COLUMNS = (
    "line_id",
    "product_id",
    "sku",
    "title",
    "category",
    "quantity",
    "unit_price",
    "discount",
    "store_id",
    "order_id",
)
"""Column order of the line records given to `copy_lines`."""

_STAGING = """
DROP TABLE IF EXISTS bf_customers, bf_products, bf_orders, bf_new_orders, bf_refunds, bf_refund_lines,
    bf_cancels;
CREATE TEMP TABLE bf_customers (
    line_no bigint NOT NULL, customer_id text NOT NULL, email text, first_name text, last_name text,
    birthday date, marketing_consent boolean NOT NULL, updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE bf_products (
    line_no bigint NOT NULL, product_id text NOT NULL, title text, category text, brand text, price bigint,
    tags text[] NOT NULL, consumable_days integer, active boolean NOT NULL, updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE bf_orders (
    order_id text NOT NULL, customer_id text NOT NULL, currency text NOT NULL, subtotal bigint NOT NULL,
    total bigint NOT NULL, placed_at timestamptz NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE bf_new_orders (order_id text PRIMARY KEY, customer_id text NOT NULL) ON COMMIT DROP;
-- seq orders refunds and cancellations: file line numbers, parked events before all of them.
CREATE TEMP TABLE bf_refunds (
    seq bigint NOT NULL, line_no bigint, order_id text NOT NULL, refund_id text NOT NULL,
    amount bigint NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE bf_refund_lines (
    seq bigint NOT NULL, order_id text NOT NULL, line_id text NOT NULL, quantity integer NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE bf_cancels (seq bigint NOT NULL, line_no bigint, order_id text NOT NULL) ON COMMIT DROP;
"""

# A sequence of snapshots applied one by one keeps a newer one (by the platform's updated_at) and
# always applies one without a time. Set-based: a snapshot applies when it has no time or is not
# older than every timed one before it (in the file, and the one kept); the last that applies wins.
_APPLICABLE = """
WITH ranked AS (
    SELECT s.*, max(s.updated_at) OVER (
               PARTITION BY s.{key} ORDER BY s.line_no ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ) AS newer_before
    FROM {staging} AS s
),
applicable AS (
    SELECT r.* FROM ranked AS r
    LEFT JOIN {table} AS t ON t.store_id = $1 AND t.{key} = r.{key}
    WHERE r.updated_at IS NULL OR greatest(r.newer_before, t.source_updated_at) IS NULL
       OR r.updated_at >= greatest(r.newer_before, t.source_updated_at)
),
winners AS (
    SELECT DISTINCT ON ({key}) *, max(updated_at) OVER (PARTITION BY {key}) AS newest
    FROM applicable ORDER BY {key}, line_no DESC
)
"""
_UPSERT_CUSTOMERS = (
    _APPLICABLE.format(key="customer_id", staging="bf_customers", table="members")
    + """
INSERT INTO members AS m (store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
                          source_updated_at, tier_code, tier_since)
SELECT $1, customer_id, email, first_name, last_name, birthday, marketing_consent, newest, $2, $3
FROM winners ORDER BY customer_id
ON CONFLICT (store_id, customer_id) DO UPDATE SET
    email = EXCLUDED.email, first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    birthday = EXCLUDED.birthday, marketing_consent = EXCLUDED.marketing_consent,
    source_updated_at = greatest(EXCLUDED.source_updated_at, m.source_updated_at), updated_at = now()
WHERE m.erased_at IS NULL
"""
)
_UPSERT_PRODUCTS = (
    _APPLICABLE.format(key="product_id", staging="bf_products", table="products")
    + """
INSERT INTO products AS p (store_id, product_id, title, category, brand, price, tags, consumable_days,
                           active, source_updated_at)
SELECT $1, product_id, title, category, brand, price, tags, consumable_days, active, newest
FROM winners ORDER BY product_id
ON CONFLICT (store_id, product_id) DO UPDATE SET
    title = EXCLUDED.title, category = EXCLUDED.category, brand = EXCLUDED.brand, price = EXCLUDED.price,
    tags = EXCLUDED.tags, consumable_days = EXCLUDED.consumable_days, active = EXCLUDED.active,
    source_updated_at = greatest(EXCLUDED.source_updated_at, p.source_updated_at), updated_at = now()
"""
)
# An order's embedded customer only fills in a member that does not exist yet.
_ENSURE_MEMBERS = """
INSERT INTO members (store_id, customer_id, email, first_name, last_name, birthday, marketing_consent,
                     tier_code, tier_since)
SELECT $1, c.*, $8, $9
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::date[], $7::boolean[]) AS c
ORDER BY 2
ON CONFLICT (store_id, customer_id) DO NOTHING
"""
# The member's tier when the order is loaded, as the per-event path records it.
_INSERT_ORDERS = """
WITH inserted AS (
    INSERT INTO orders (store_id, order_id, customer_id, currency, subtotal, total, placed_at,
                        program_version, tier_code, awarded)
    SELECT $1, o.order_id, o.customer_id, o.currency, o.subtotal, o.total, o.placed_at, $2, m.tier_code, false
    FROM bf_orders AS o JOIN members AS m ON m.store_id = $1 AND m.customer_id = o.customer_id
    ORDER BY o.order_id
    ON CONFLICT (store_id, order_id) DO NOTHING
    RETURNING order_id, customer_id
)
INSERT INTO bf_new_orders (order_id, customer_id) SELECT order_id, customer_id FROM inserted
RETURNING order_id
"""
_COUNT_NEW_ORDERS = """
UPDATE members AS m SET orders_count = m.orders_count + n.orders, updated_at = now()
FROM (SELECT customer_id, count(*) AS orders FROM bf_new_orders GROUP BY customer_id) AS n
WHERE m.store_id = $1 AND m.customer_id = n.customer_id
"""
# Lines that named no category take the catalogue's, as the per-event path does.
_FILL_CATEGORIES = """
UPDATE order_lines AS l SET category = p.category
FROM bf_new_orders AS n, products AS p
WHERE l.store_id = $1 AND l.order_id = n.order_id AND l.category IS NULL
  AND p.store_id = $1 AND p.product_id = l.product_id AND p.category IS NOT NULL
"""
_TOP_MEMBERS = """
SELECT customer_id, tier_code, balance, orders_count FROM members
WHERE store_id = $1 ORDER BY balance DESC, customer_id LIMIT $2
"""
# Triggers on order_lines: only the internal ones of its foreign key to orders, nothing else.
_ONLY_THE_ORDERS_KEY = """
SELECT NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'order_lines'::regclass AND NOT tgisinternal)
   AND NOT EXISTS (SELECT 1 FROM pg_rules WHERE tablename = 'order_lines')
   AND array(SELECT confrelid FROM pg_constraint WHERE conrelid = 'order_lines'::regclass AND contype = 'f')
       = array['orders'::regclass::oid]
"""
_SUPERUSER = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
_MAY_SET_REPLICATION_ROLE = "SELECT has_parameter_privilege('session_replication_role', 'SET')"
_COUNT_MEMBERS = "SELECT count(*) FROM members WHERE store_id = $1"


class TopMember(msgspec.Struct, frozen=True, kw_only=True):
    customer_id: str
    tier_code: str
    balance: int
    orders_count: int


async def top_members(conn: Connection, *, store_id: str, limit: int) -> list[TopMember]:
    """The members with the most points (for the demo's examples)."""
    rows = await conn.fetch(_TOP_MEMBERS, store_id, limit)
    return msgspec.convert(rows, list[TopMember], from_attributes=True)


async def count_members(conn: Connection, *, store_id: str) -> int:
    count: int = await conn.fetchval(_COUNT_MEMBERS, store_id)
    return count


async def create_staging(conn: Connection) -> None:
    """Create the temporary staging tables (dropped when the transaction ends)."""
    await conn.execute(_STAGING)


async def _stage(conn: Connection, table: str, records: Iterable[Sequence[Any]]) -> None:
    await conn.execute(f"TRUNCATE {table}")
    await conn.copy_records_to_table(table, records=records)


async def upsert_customers(
    conn: Connection, *, store_id: str, records: list[CustomerRecord], tier_code: str, now: datetime
) -> None:
    """Apply customer snapshots as if one by one in line order; new members start on `tier_code`."""
    await _stage(conn, "bf_customers", records)
    await conn.execute(_UPSERT_CUSTOMERS, store_id, tier_code, now)


async def upsert_products(conn: Connection, *, store_id: str, records: list[ProductRecord]) -> None:
    await _stage(conn, "bf_products", records)
    await conn.execute(_UPSERT_PRODUCTS, store_id)


async def ensure_members(
    conn: Connection,
    *,
    store_id: str,
    customers: Sequence[MemberRecord],
    tier_code: str,
    now: datetime,
) -> None:
    """Create the members that do not exist yet, from orders' customers."""
    columns = list(zip(*customers, strict=True))
    await conn.execute(_ENSURE_MEMBERS, store_id, *columns, tier_code, now)


async def insert_orders(
    conn: Connection, *, store_id: str, records: list[OrderRecord], program_version: int | None
) -> set[str]:
    """Insert orders not known yet (awarding nothing); returns the ids of those inserted."""
    await _stage(conn, "bf_orders", records)
    return {row["order_id"] for row in await conn.fetch(_INSERT_ORDERS, store_id, program_version)}


async def can_skip_line_checks(conn: Connection) -> bool:
    """Whether `copy_lines` may skip the per-row foreign-key check (see `copy_lines`): only when
    that check is all that fires on order_lines and this role may set session_replication_role."""
    if not await conn.fetchval(_ONLY_THE_ORDERS_KEY):
        return False
    if await conn.fetchval(_SUPERUSER):
        return True
    if int(await conn.fetchval("SHOW server_version_num")) < 150000:
        return False
    granted: bool = await conn.fetchval(_MAY_SET_REPLICATION_ROLE)
    return granted


async def copy_lines(
    conn: Connection, *, records: Iterable[tuple[Any, ...]], skip_key_check: bool = False
) -> None:
    """COPY order lines (columns as LINE_COLUMNS) straight into order_lines.

    Only lines of orders this transaction has just inserted may be given: then `skip_key_check`
    may turn off triggers for the COPY (session_replication_role = replica), which skips the
    foreign-key check to orders, one query per line and more than half of a backfill's time. It
    holds by construction: the orders are this transaction's own rows, which no other can see,
    lock or delete before it commits.
    """
    if skip_key_check:
        await conn.execute("SET LOCAL session_replication_role = replica")
    await conn.copy_records_to_table("order_lines", records=records, columns=LINE_COLUMNS)
    if skip_key_check:
        await conn.execute("SET LOCAL session_replication_role = origin")


async def analyze_orders(conn: Connection) -> None:
    """Refresh the planner's statistics of the tables the per-event path reads (and the plans
    cached on them)."""
    await conn.execute("ANALYZE members, products, orders, order_lines, point_lots")


async def count_new_orders(conn: Connection, *, store_id: str) -> None:
    await conn.execute("ANALYZE bf_new_orders")
    await conn.execute(_COUNT_NEW_ORDERS, store_id)


async def fill_categories(conn: Connection, *, store_id: str) -> None:
    await conn.execute(_FILL_CATEGORIES, store_id)
