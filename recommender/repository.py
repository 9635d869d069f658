"""All SQL of the recommender. Functions take a connection; none opens a transaction.

Everything over many members is one set-based statement: the database groups order lines into
member x product interactions (net of refunds, cancelled orders left out, decayed by age, with the
median gap between orders), and Python only receives the grouped rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import numpy as np
from asyncpg.pool import PoolConnectionProxy

from recommender.dataset import Catalogue, Interactions, MemberFacts

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Connection = PoolConnectionProxy

# One row per member x product x order first (lines of one product in one order are one purchase),
# then per member x product. Erased members are left out; inactive products are kept (they still
# say what the member likes), serving drops them.
_INTERACTIONS = """
WITH bought AS (
    SELECT o.customer_id, l.product_id, o.placed_at, sum(l.quantity - l.refunded_qty)::float8 AS quantity
    FROM orders o
    JOIN order_lines l ON l.store_id = o.store_id AND l.order_id = o.order_id
    JOIN members m ON m.store_id = o.store_id AND m.customer_id = o.customer_id
    WHERE o.store_id = $1 AND o.status = 'paid' AND o.placed_at >= $2 AND o.placed_at < $3
      AND l.product_id IS NOT NULL AND m.erased_at IS NULL
    GROUP BY o.customer_id, l.product_id, o.order_id, o.placed_at
    HAVING sum(l.quantity - l.refunded_qty) > 0
), gaps AS (
    SELECT customer_id, product_id, placed_at, quantity,
           extract(epoch FROM placed_at - lag(placed_at) OVER w)::float8 / 86400 AS gap
    FROM bought
    WINDOW w AS (PARTITION BY customer_id, product_id ORDER BY placed_at)
)
SELECT customer_id, product_id, count(*)::float8 AS orders, sum(quantity) AS quantity,
       sum(power(0.5::float8, extract(epoch FROM $3 - placed_at)::float8 / 86400 / $4)) AS recency,
       extract(epoch FROM min(placed_at))::float8 AS first_at,
       extract(epoch FROM max(placed_at))::float8 AS last_at,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median_gap
FROM gaps
GROUP BY customer_id, product_id
ORDER BY customer_id, product_id
"""
_CATALOGUE = """
SELECT product_id, coalesce(category, '') AS category, coalesce(brand, '') AS brand,
       price::float8 AS price, tags, consumable_days::float8 AS consumable_days, active
FROM products WHERE store_id = $1 ORDER BY product_id COLLATE "C"
"""
# Preferences keep their provenance: {"favourite_categories": {"value": [...], "channel", ...}}.
_MEMBER_FACTS = """
SELECT m.customer_id, m.tier_code,
       CASE WHEN jsonb_typeof(m.preferences -> 'favourite_categories' -> 'value') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(m.preferences -> 'favourite_categories' -> 'value'))
            ELSE '{}'::text[] END AS favourites
FROM members m WHERE m.store_id = $1 AND m.erased_at IS NULL ORDER BY m.customer_id COLLATE "C"
"""
# For serving without Redis (recommender/fallback.py): one member's products, and the store's
# recent best sellers. Inactive products are left out, as serving does.
_BOUGHT_BY_MEMBER = """
WITH bought AS (
    SELECT l.product_id, o.order_id, max(o.placed_at) AS placed_at
    FROM orders o
    JOIN order_lines l ON l.store_id = o.store_id AND l.order_id = o.order_id
    WHERE o.store_id = $1 AND o.customer_id = $2 AND o.status = 'paid' AND l.product_id IS NOT NULL
    GROUP BY l.product_id, o.order_id
    HAVING sum(l.quantity - l.refunded_qty) > 0
)
SELECT b.product_id, count(*)::float8 / (SELECT count(DISTINCT order_id) FROM bought) AS share
FROM bought b
LEFT JOIN products p ON p.store_id = $1 AND p.product_id = b.product_id
WHERE coalesce(p.active, true)
GROUP BY b.product_id
ORDER BY count(*) DESC, max(b.placed_at) DESC, b.product_id
"""
_POPULAR_SINCE = """
SELECT l.product_id,
       count(DISTINCT o.customer_id)::float8
         / greatest((SELECT count(*) FROM members WHERE store_id = $1 AND erased_at IS NULL), 1) AS share
FROM orders o
JOIN order_lines l ON l.store_id = o.store_id AND l.order_id = o.order_id
LEFT JOIN products p ON p.store_id = o.store_id AND p.product_id = l.product_id
WHERE o.store_id = $1 AND o.status = 'paid' AND o.placed_at >= $2 AND l.product_id IS NOT NULL
  AND coalesce(p.active, true)
GROUP BY l.product_id
ORDER BY share DESC, l.product_id
LIMIT $3
"""
_STORES = "SELECT DISTINCT store_id FROM orders ORDER BY store_id"
_NEXT_VERSION = """
SELECT coalesce(max(version), 0) + 1 FROM recommender_models WHERE store_id = $1
"""
_INSERT_MODEL = """
INSERT INTO recommender_models (store_id, version, window_start, window_end, hyper, metrics, members,
                                products, interactions, arrays)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10)
"""
_SET_LIVE = """
INSERT INTO recommender_live (store_id, version) VALUES ($1, $2)
ON CONFLICT (store_id) DO UPDATE SET version = EXCLUDED.version, switched_at = now()
"""
_LIVE_VERSION = "SELECT version FROM recommender_live WHERE store_id = $1"
_MODEL_ARRAYS = "SELECT arrays FROM recommender_models WHERE store_id = $1 AND version = $2"
# Keep the live version, the one before it (to switch back) and nothing older.
_PRUNE = """
DELETE FROM recommender_models m
WHERE m.store_id = $1 AND m.version < $2 - 1
  AND NOT EXISTS (SELECT 1 FROM recommender_live r WHERE r.store_id = m.store_id AND r.version = m.version)
"""


def _floats(rows: list[asyncpg.Record], column: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([np.nan if row[column] is None else row[column] for row in rows], dtype=np.float64)


async def interactions(
    conn: Connection,
    *,
    store_id: str,
    catalogue: Catalogue,
    since: datetime,
    until: datetime,
    half_life_days: float,
) -> Interactions:
    """Member x product interactions from orders placed in [since, until) (see `dataset.aggregate`)."""
    rows = await conn.fetch(_INTERACTIONS, store_id, since, until, float(half_life_days))
    member = np.array([row["customer_id"] for row in rows], dtype=np.str_)
    item = catalogue.index(np.array([row["product_id"] for row in rows], dtype=np.str_))
    keep = item >= 0
    members, user = np.unique(member[keep], return_inverse=True)
    return Interactions(
        members=members,
        user=user.astype(np.int64),
        item=item[keep],
        orders=_floats(rows, "orders")[keep],
        quantity=_floats(rows, "quantity")[keep],
        recency=_floats(rows, "recency")[keep],
        first_at=_floats(rows, "first_at")[keep],
        last_at=_floats(rows, "last_at")[keep],
        median_gap=_floats(rows, "median_gap")[keep],
        until=until.timestamp(),
    )


async def catalogue(conn: Connection, *, store_id: str) -> Catalogue:
    """The store's products, sorted by id (byte order, as numpy sorts)."""
    rows = await conn.fetch(_CATALOGUE, store_id)
    return Catalogue(
        product=np.array([row["product_id"] for row in rows], dtype=np.str_),
        category=np.array([row["category"] for row in rows], dtype=np.str_),
        brand=np.array([row["brand"] for row in rows], dtype=np.str_),
        price=_floats(rows, "price"),
        tags=[tuple(row["tags"]) for row in rows],
        consumable_days=_floats(rows, "consumable_days"),
        active=np.array([row["active"] for row in rows], dtype=bool),
    )


async def member_facts(conn: Connection, *, store_id: str) -> MemberFacts:
    """Every member's tier (as the segment) and favourite categories (from their preferences)."""
    rows = await conn.fetch(_MEMBER_FACTS, store_id)
    return MemberFacts(
        member=np.array([row["customer_id"] for row in rows], dtype=np.str_),
        segment=np.array([row["tier_code"] for row in rows], dtype=np.str_),
        favourites=[tuple(row["favourites"]) for row in rows],
    )


async def bought_by_member(conn: Connection, *, store_id: str, customer_id: str) -> list[tuple[str, float]]:
    """The member's products by how many of their paid orders held them (net of refunds), the most
    recent first among equals; each with the share of their orders that held it."""
    rows = await conn.fetch(_BOUGHT_BY_MEMBER, store_id, customer_id)
    return [(row["product_id"], row["share"]) for row in rows]


async def popular_since(
    conn: Connection, *, store_id: str, since: datetime, limit: int
) -> list[tuple[str, float]]:
    """The store's products bought by the most members since `since`, each with the share of the
    store's members who did."""
    rows = await conn.fetch(_POPULAR_SINCE, store_id, since, limit)
    return [(row["product_id"], row["share"]) for row in rows]


async def stores(conn: Connection) -> list[str]:
    """Stores with any order: the ones worth training for."""
    return [row["store_id"] for row in await conn.fetch(_STORES)]


@dataclass(frozen=True)
class NewModel:
    store_id: str
    window_start: datetime
    window_end: datetime
    hyper: dict[str, Any]
    metrics: dict[str, Any]
    members: int
    products: int
    interactions: int
    arrays: bytes


async def insert_model(conn: Connection, model: NewModel) -> int:
    """Store a trained model as the store's next version (not live yet); returns the version."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('recommender/' || $1, 0))", model.store_id
    )
    version: int = await conn.fetchval(_NEXT_VERSION, model.store_id)
    await conn.execute(
        _INSERT_MODEL,
        model.store_id,
        version,
        model.window_start,
        model.window_end,
        json.dumps(model.hyper),
        json.dumps(model.metrics),
        model.members,
        model.products,
        model.interactions,
        model.arrays,
    )
    return version


async def set_live(conn: Connection, *, store_id: str, version: int) -> int | None:
    """Make `version` the one served (one row update); returns the version it replaced."""
    previous: int | None = await conn.fetchval(_LIVE_VERSION, store_id)
    await conn.execute(_SET_LIVE, store_id, version)
    await conn.execute(_PRUNE, store_id, version)
    return previous


async def live_version(conn: Connection, *, store_id: str) -> int | None:
    version: int | None = await conn.fetchval(_LIVE_VERSION, store_id)
    return version


async def model_arrays(conn: Connection, *, store_id: str, version: int) -> bytes | None:
    """The stored arrays of one version, for workers that precompute or evaluate."""
    data: bytes | None = await conn.fetchval(_MODEL_ARRAYS, store_id, version)
    return data
