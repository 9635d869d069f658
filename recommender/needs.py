"""Need prediction: when will a member need a product again?

Each member x product gets a rhythm (expected days between purchases), from the best source there is:
1. the member's own rhythm: the median gap between their orders of it (two orders or more);
2. the product's `consumable_days`, as the shop states it;
3. the population's rhythm: the median of other members' own rhythms for the product, then for its
   category.
The due date is the last purchase plus the rhythm; the confidence grows with the evidence behind it.
Products nobody rebuys and the shop calls nothing consumable have no rhythm: they are not "needed".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from recommender import repository
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Floats, Interactions, Ints, group_median
from recommender.repository import Connection

BASES = ("none", "member", "product", "population", "category")
"""Where a rhythm came from, indexed by `Rhythm.basis`."""

# The shop's own consumable_days is a statement about the product, not about this member: trusted
# about as much as a member rhythm seen over two gaps.
PRODUCT_CONFIDENCE = 0.5
# A population rhythm says what others do; it needs several members behind it and is capped low.
POPULATION_CONFIDENCE = 0.3
MIN_POPULATION = 3


@dataclass(frozen=True)
class Rhythm:
    """Per interaction pair: expected days between purchases (NaN: none), confidence in [0, 1], and the
    index into `BASES` of where the rhythm came from."""

    days: Floats
    confidence: Floats
    basis: NDArray[np.int8]

    def due_at(self, interactions: Interactions) -> Floats:
        """When each pair is next due, Unix seconds (NaN: no rhythm)."""
        due: Floats = interactions.last_at + self.days * SECONDS_PER_DAY
        return due

    def due_ratio(self, interactions: Interactions) -> Floats:
        """Days since the last purchase over the rhythm: 1.0 means due now, 2.0 twice overdue."""
        since = (interactions.until - interactions.last_at) / SECONDS_PER_DAY
        ratio: Floats = np.divide(since, self.days, out=np.full(len(since), np.nan), where=self.days > 0)
        return ratio


def _population(keys: NDArray[np.int64], own: Floats, n: int) -> tuple[Floats, Floats]:
    """Median of members' own rhythms per key, and how many members stand behind it."""
    has = np.isfinite(own)
    median = group_median(keys[has], own[has], n)
    support = np.bincount(keys[has], minlength=n).astype(np.float64)
    median[support < MIN_POPULATION] = np.nan
    return median, support


@dataclass(frozen=True)
class Population:
    """What members' own rhythms say about a product and a category (medians, and how many members
    stand behind each): learned once from every pair, then applied to any of them (`rhythm_of`)."""

    product_days: Floats
    product_support: Floats
    category: Ints
    """Per product: its category's index, -1 for none."""
    category_days: Floats

    @classmethod
    def learn(cls, interactions: Interactions, catalogue: Catalogue) -> Population:
        own = _own(interactions)
        product_days, product_support = _population(interactions.item, own, len(catalogue.product))
        _, category = np.unique(catalogue.category, return_inverse=True)
        category = np.where(catalogue.category == "", -1, category)
        pair_category = category[interactions.item]
        in_category = pair_category >= 0
        category_days = np.full(int(category.max(initial=-1)) + 1, np.nan)
        if in_category.any():
            category_days, _ = _population(pair_category[in_category], own[in_category], len(category_days))
        return cls(product_days, product_support, category, category_days)

    def rhythm_of(self, interactions: Interactions, catalogue: Catalogue) -> Rhythm:
        """The rhythm of each of these pairs (vectorised over pairs)."""
        n = len(interactions.item)
        own = _own(interactions)
        gaps = interactions.orders - 1
        days = own.copy()
        confidence = np.where(np.isfinite(own), gaps / (gaps + 2), 0.0)
        basis = np.where(np.isfinite(own), 1, 0).astype(np.int8)

        stated = catalogue.consumable_days[interactions.item]
        use = ~np.isfinite(days) & (stated > 0)
        days[use], confidence[use], basis[use] = stated[use], PRODUCT_CONFIDENCE, 2

        pair_category = self.category[interactions.item]
        category_days = np.full(n, np.nan)
        in_category = pair_category >= 0
        category_days[in_category] = self.category_days[pair_category[in_category]]
        for level, source, support in (
            (3, self.product_days[interactions.item], self.product_support[interactions.item]),
            (4, category_days, np.full(n, float(MIN_POPULATION))),
        ):
            use = ~np.isfinite(days) & np.isfinite(source)
            days[use] = source[use]
            confidence[use] = POPULATION_CONFIDENCE * support[use] / (support[use] + MIN_POPULATION)
            basis[use] = level
            if level == 4:
                confidence[use] /= 2  # a category's rhythm is a rougher guess than the product's
        return Rhythm(days=days, confidence=confidence, basis=basis)


def _own(interactions: Interactions) -> Floats:
    """Each pair's own rhythm: the median gap between its orders (NaN under two orders)."""
    own: Floats = np.where(interactions.median_gap > 0, interactions.median_gap, np.nan)
    return own


def rhythm(interactions: Interactions, catalogue: Catalogue) -> Rhythm:
    """The rhythm of every interaction pair, the population learned from these same pairs."""
    return Population.learn(interactions, catalogue).rhythm_of(interactions, catalogue)


@dataclass(frozen=True)
class Need:
    """A member's predicted need of a product: due at `due_at`, with a confidence and its basis."""

    customer_id: str
    product_id: str
    last_bought_at: datetime
    due_at: datetime
    rhythm_days: float
    confidence: float
    basis: str


def needs(
    interactions: Interactions, catalogue: Catalogue, *, due_before: float, min_confidence: float = 0.0
) -> list[Need]:
    """Needs due before `due_before` (Unix seconds) for active products, soonest first."""
    r = rhythm(interactions, catalogue)
    due = r.due_at(interactions)
    pick = np.flatnonzero(
        np.isfinite(due)
        & (due < due_before)
        & (r.confidence >= min_confidence)
        & catalogue.active[interactions.item]
    )
    pick = pick[np.argsort(due[pick], kind="stable")]

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    return [
        Need(
            customer_id=str(interactions.members[interactions.user[i]]),
            product_id=str(catalogue.product[interactions.item[i]]),
            last_bought_at=at(interactions.last_at[i]),
            due_at=at(due[i]),
            rhythm_days=round(float(r.days[i]), 2),
            confidence=round(float(r.confidence[i]), 3),
            basis=BASES[r.basis[i]],
        )
        for i in pick
    ]


async def due(
    conn: Connection,
    *,
    store_id: str,
    now: datetime,
    within: timedelta = timedelta(days=3),
    history: timedelta = timedelta(days=730),
    min_confidence: float = 0.0,
) -> list[Need]:
    """What the store's members will need by `now + within`: the care engine's `replenish` input.
    Needs long overdue (more than three rhythms ago) are dropped: the member has moved on."""
    catalogue = await repository.catalogue(conn, store_id=store_id)
    pairs = await repository.interactions(
        conn, store_id=store_id, catalogue=catalogue, since=now - history, until=now, half_life_days=90.0
    )
    found = needs(pairs, catalogue, due_before=(now + within).timestamp(), min_confidence=min_confidence)
    return [
        need
        for need in found
        if (now - need.due_at).total_seconds() <= 2 * need.rhythm_days * SECONDS_PER_DAY
    ]
