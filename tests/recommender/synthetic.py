"""Synthetic purchase history with a known structure, for recommender tests.

Two taste groups of members: group A buys from categories `tea` and `cups`, group B from `wine` and
`glasses`. Every member has a staple they rebuy on a fixed rhythm (A: tea-0 every 14 days, B: wine-0
every 30 days) and picks a few other products of their group's categories at random. A good model
recommends each member their group's products; the need prediction finds the rhythms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from loyalty.repository import Connection
from recommender.dataset import Catalogue, MemberFacts, Purchases
from recommender.lists import TopLists
from recommender.mixed import mix

START = datetime(2026, 1, 1, tzinfo=UTC)
GROUPS = {"A": ("tea", "cups"), "B": ("wine", "glasses")}
STAPLE = {"A": ("tea-0", 14), "B": ("wine-0", 30)}
PER_CATEGORY = 8


@dataclass(frozen=True)
class Line:
    customer_id: str
    product_id: str
    placed_at: datetime
    quantity: int


def products() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for categories in GROUPS.values():
        for category in categories:
            for i in range(PER_CATEGORY):
                out.append(
                    {
                        "product_id": f"{category}-{i}",
                        "title": f"{category} {i}",
                        "category": category,
                        "brand": "house" if i % 2 else "other",
                        "price": 500 + 100 * i,
                        "tags": [category, "gift"] if i % 3 == 0 else [category],
                        "consumable_days": 20 if category in ("tea", "wine") else None,
                    }
                )
    return out


def history(members_per_group: int = 40, days: int = 120, seed: int = 7) -> list[Line]:
    """Every member's lines over `days` from START (one order per line, placed at noon)."""
    rng = np.random.default_rng(seed)
    lines = []
    for group, categories in GROUPS.items():
        staple, every = STAPLE[group]
        for m in range(members_per_group):
            customer = f"{group.lower()}{m}"
            offset = int(rng.integers(0, every))
            for day in range(offset, days, every):
                lines.append(Line(customer, staple, START + timedelta(days=day, hours=12), 1))
            for _ in range(6):
                category = categories[int(rng.integers(0, 2))]
                item = int(rng.integers(1, PER_CATEGORY))
                day = int(rng.integers(0, days))
                lines.append(Line(customer, f"{category}-{item}", START + timedelta(days=day, hours=9), 2))
    return lines


def as_arrays(lines: list[Line]) -> tuple[Purchases, Catalogue, MemberFacts]:
    """The same history as the arrays a source yields (one line = one order)."""
    catalogue_rows = sorted(products(), key=lambda p: str(p["product_id"]))
    catalogue = Catalogue(
        product=np.array([p["product_id"] for p in catalogue_rows], dtype=np.str_),
        category=np.array([p["category"] for p in catalogue_rows], dtype=np.str_),
        brand=np.array([p["brand"] for p in catalogue_rows], dtype=np.str_),
        price=np.array([float(p["price"]) for p in catalogue_rows]),  # type: ignore[arg-type]
        tags=[tuple(p["tags"]) for p in catalogue_rows],  # type: ignore[arg-type]
        consumable_days=np.array(
            [np.nan if p["consumable_days"] is None else float(p["consumable_days"]) for p in catalogue_rows]  # type: ignore[arg-type]
        ),
        active=np.ones(len(catalogue_rows), dtype=bool),
    )
    members = sorted({line.customer_id for line in lines})
    facts = MemberFacts(
        member=np.array(members, dtype=np.str_),
        segment=np.array(["member"] * len(members), dtype=np.str_),
        favourites=[() for _ in members],
    )
    purchases = Purchases(
        member=np.array([line.customer_id for line in lines], dtype=np.str_),
        product=np.array([line.product_id for line in lines], dtype=np.str_),
        at=np.array([line.placed_at.timestamp() for line in lines]),
        quantity=np.array([float(line.quantity) for line in lines]),
    )
    return purchases, catalogue, facts


async def insert(conn: Connection, store_id: str, lines: list[Line]) -> None:
    """Bulk-insert products, members, orders and lines straight into the tables (fast; the webhook
    path is tested on its own), one order per line."""
    catalogue = products()
    await conn.executemany(
        "INSERT INTO products (store_id, product_id, title, category, brand, price, tags, consumable_days)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                store_id,
                p["product_id"],
                p["title"],
                p["category"],
                p["brand"],
                p["price"],
                p["tags"],
                p["consumable_days"],
            )
            for p in catalogue
        ],
    )
    members = sorted({line.customer_id for line in lines})
    await conn.execute(
        "INSERT INTO members (store_id, customer_id, tier_code, tier_since)"
        " SELECT $1, c, 'member', now() FROM unnest($2::text[]) AS c",
        store_id,
        members,
    )
    ids = [f"o{i}" for i in range(len(lines))]
    await conn.execute(
        "INSERT INTO orders (store_id, order_id, customer_id, currency, subtotal, total, placed_at)"
        " SELECT $1, o, c, 'EUR', 1000, 1000, t FROM unnest($2::text[], $3::text[], $4::timestamptz[])"
        " AS x (o, c, t)",
        store_id,
        ids,
        [line.customer_id for line in lines],
        [line.placed_at for line in lines],
    )
    await conn.execute(
        "INSERT INTO order_lines (store_id, order_id, line_id, product_id, quantity, unit_price)"
        " SELECT $1, o, 'l1', p, q, 500 FROM unnest($2::text[], $3::text[], $4::int[]) AS x (o, p, q)",
        store_id,
        ids,
        [line.product_id for line in lines],
        [line.quantity for line in lines],
    )


def top_lists(members: list[str], k: int) -> TopLists:
    """Each member's lists: buy-again products 0 … k-1, discover k … 2k-1 (reason `similar_members`)."""
    n = len(members)
    again = np.tile(np.arange(k), (n, 1))
    found = np.tile(np.arange(k, 2 * k), (n, 1))
    again_scores = np.tile(np.linspace(0.9, 0.5, k), (n, 1)).astype(np.float32)
    found_scores = np.tile(np.linspace(0.7, 0.1, k), (n, 1)).astype(np.float32)
    source, position = mix(again_scores, found_scores, k)
    return TopLists(
        members=np.array(members, dtype=np.str_),
        again_items=again,
        again_scores=again_scores,
        again_reasons=np.zeros((n, k), dtype=np.int8),
        discover_items=found,
        discover_scores=found_scores,
        discover_reasons=np.full((n, k), 2, dtype=np.int8),
        mixed_source=source,
        mixed_position=position,
    )
