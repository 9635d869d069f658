"""The product catalogue."""

from __future__ import annotations

from datetime import datetime

from loyalty.repository import Connection

# A newer snapshot (by the platform's updated_at) wins; one without a time always applies.
_UPSERT = """
INSERT INTO products AS p (store_id, product_id, title, category, brand, price, tags, consumable_days,
                           active, source_updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (store_id, product_id) DO UPDATE SET
    title = EXCLUDED.title, category = EXCLUDED.category, brand = EXCLUDED.brand, price = EXCLUDED.price,
    tags = EXCLUDED.tags, consumable_days = EXCLUDED.consumable_days, active = EXCLUDED.active,
    source_updated_at = coalesce(EXCLUDED.source_updated_at, p.source_updated_at), updated_at = now()
WHERE p.source_updated_at IS NULL OR EXCLUDED.source_updated_at IS NULL
   OR EXCLUDED.source_updated_at >= p.source_updated_at
RETURNING product_id
"""
# Order lines name products no product event has described yet: keep what the line says.
_FROM_LINES = """
INSERT INTO products (store_id, product_id, title, category, price)
SELECT DISTINCT ON (product_id) $1, product_id, title, category, unit_price
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) AS l (product_id, title, category, unit_price)
WHERE product_id IS NOT NULL
ON CONFLICT (store_id, product_id) DO NOTHING
"""
_CATEGORIES = """
SELECT product_id, category FROM products WHERE store_id = $1 AND product_id = ANY($2::text[])
"""


async def upsert(
    conn: Connection,
    *,
    store_id: str,
    product_id: str,
    title: str | None,
    category: str | None,
    brand: str | None,
    price: int | None,
    tags: list[str],
    consumable_days: int | None,
    active: bool,
    source_updated_at: datetime | None,
) -> bool:
    """False when the snapshot was older than the one kept."""
    row = await conn.fetchval(
        _UPSERT,
        store_id,
        product_id,
        title,
        category,
        brand,
        price,
        tags,
        consumable_days,
        active,
        source_updated_at,
    )
    return row is not None


async def add_from_lines(
    conn: Connection,
    *,
    store_id: str,
    product_ids: list[str | None],
    titles: list[str | None],
    categories: list[str | None],
    prices: list[int],
) -> None:
    await conn.execute(_FROM_LINES, store_id, product_ids, titles, categories, prices)


async def categories(conn: Connection, *, store_id: str, product_ids: list[str]) -> dict[str, str]:
    rows = await conn.fetch(_CATEGORIES, store_id, product_ids)
    return {row["product_id"]: row["category"] for row in rows if row["category"] is not None}
