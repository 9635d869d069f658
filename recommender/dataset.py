"""Purchase history as arrays and sparse matrices: the one shape every source is turned into.

A source (PostgreSQL through `recommender.repository`, or the retail CSV through `recommender.retail`)
yields `Purchases` (one row per member x product x order, net of refunds, cancelled orders left out),
a `Catalogue` and `MemberFacts`. `aggregate` turns purchases into member x product `Interactions`
(the SQL in the repository computes the very same columns in the database); `build_matrices` turns
interactions and facts into what LightFM trains on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

SECONDS_PER_DAY = 86400.0

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Strs = NDArray[np.str_]


@dataclass(frozen=True)
class Purchases:
    """One row per member x product x order: quantity net of refunds, `at` in Unix seconds."""

    member: Strs
    product: Strs
    at: Floats
    quantity: Floats

    def before(self, until: float) -> Purchases:
        keep = self.at < until
        return Purchases(self.member[keep], self.product[keep], self.at[keep], self.quantity[keep])

    def between(self, since: float, until: float) -> Purchases:
        keep = (self.at >= since) & (self.at < until)
        return Purchases(self.member[keep], self.product[keep], self.at[keep], self.quantity[keep])


@dataclass(frozen=True)
class Catalogue:
    """Products in id order (`product` is sorted and unique); blanks and NaN mean unknown."""

    product: Strs
    category: Strs
    brand: Strs
    price: Floats
    tags: list[tuple[str, ...]]
    consumable_days: Floats
    active: NDArray[np.bool_]

    def index(self, ids: Strs) -> Ints:
        """Positions of `ids` in the catalogue, -1 for ids it does not hold."""
        pos = np.searchsorted(self.product, ids)
        pos = np.minimum(pos, max(len(self.product) - 1, 0))
        found = len(self.product) > 0
        hit = (self.product[pos] == ids) if found else np.zeros(len(ids), dtype=bool)
        return np.where(hit, pos, -1).astype(np.int64)


@dataclass(frozen=True)
class MemberFacts:
    """What is known of members beyond purchases: a segment (the tier, or a country) and favourites."""

    member: Strs
    segment: Strs
    favourites: list[tuple[str, ...]]


@dataclass(frozen=True)
class Interactions:
    """Member x product pairs bought before `until`. `item` indexes the catalogue; `user` indexes
    `members`. `recency` is the number of orders, each decayed by its age (half-life in days);
    `median_gap` is the median number of days between consecutive orders (NaN under two orders)."""

    members: Strs
    user: Ints
    item: Ints
    orders: Floats
    quantity: Floats
    recency: Floats
    first_at: Floats
    last_at: Floats
    median_gap: Floats
    until: float

    @property
    def n_users(self) -> int:
        return len(self.members)

    def subset(self, rows: Ints) -> Interactions:
        """These pairs only (indexes into the arrays), members and `until` unchanged."""
        return Interactions(
            members=self.members,
            user=self.user[rows],
            item=self.item[rows],
            orders=self.orders[rows],
            quantity=self.quantity[rows],
            recency=self.recency[rows],
            first_at=self.first_at[rows],
            last_at=self.last_at[rows],
            median_gap=self.median_gap[rows],
            until=self.until,
        )


def _group_starts(sorted_keys: Ints) -> Ints:
    change = np.flatnonzero(np.diff(sorted_keys)) + 1
    return np.concatenate(([0], change)).astype(np.int64)


def group_median(keys: Ints, values: Floats, n_groups: int) -> Floats:
    """Median of `values` per key in [0, n_groups), NaN for keys without values; vectorised."""
    out = np.full(n_groups, np.nan)
    if len(keys) == 0:
        return out
    # Sorted by value (equal values are interchangeable, so no stable sort is needed), then stably by
    # key: radix sort when the keys fit 16 bits. A quarter of `lexsort`'s time on floats.
    order = np.argsort(values)
    by_key = keys[order]
    if n_groups <= 1 << 16:
        by_key = by_key.astype(np.uint16)
    order = order[np.argsort(by_key, kind="stable")]
    k, v = keys[order], values[order]
    starts = _group_starts(k)
    counts = np.diff(np.append(starts, len(k)))
    low = v[starts + (counts - 1) // 2]
    high = v[starts + counts // 2]
    out[k[starts]] = (low + high) / 2
    return out


def aggregate(
    purchases: Purchases, catalogue: Catalogue, *, until: float, half_life_days: float
) -> Interactions:
    """Member x product interactions from purchases before `until` (products outside the catalogue
    are dropped): the numpy twin of `repository.interactions`."""
    p = purchases.before(until)
    item = catalogue.index(p.product)
    keep = (item >= 0) & (p.quantity > 0)
    members, user = np.unique(p.member[keep], return_inverse=True)
    item, at, quantity = item[keep], p.at[keep], p.quantity[keep]
    n_items = len(catalogue.product)
    pair = user.astype(np.int64) * n_items + item
    order = np.lexsort((at, pair))
    pair, at, quantity = pair[order], at[order], quantity[order]
    starts = _group_starts(pair) if len(pair) else np.zeros(0, dtype=np.int64)
    group = np.cumsum(np.concatenate(([0], np.diff(pair) != 0))) if len(pair) else pair
    ends = np.append(starts[1:], len(pair)) - 1
    n = len(starts)
    decay = np.power(0.5, (until - at) / SECONDS_PER_DAY / half_life_days)
    same = np.diff(group) == 0
    gaps = np.diff(at)[same] / SECONDS_PER_DAY
    return Interactions(
        members=members,
        user=(pair[starts] // n_items).astype(np.int64),
        item=(pair[starts] % n_items).astype(np.int64),
        orders=np.bincount(group, minlength=n).astype(np.float64),
        quantity=np.bincount(group, weights=quantity, minlength=n).astype(np.float64),
        recency=np.bincount(group, weights=decay, minlength=n).astype(np.float64),
        first_at=at[starts],
        last_at=at[ends],
        median_gap=group_median(group[1:][same].astype(np.int64), gaps, n),
        until=until,
    )


@dataclass(frozen=True)
class FeatureWeights:
    """How much of each row's unit weight goes to each kind of feature (rows are normalised to 1).

    `identity` lets the model learn a product (member) of its own; the others let products share
    what their category, brand, price band and tags say, which is what carries a new or rarely
    bought product. Chosen by evaluation (see EVALUATION.md)."""

    identity: float = 1.0
    category: float = 0.5
    brand: float = 0.5
    price: float = 0.25
    tags: float = 0.5
    segment: float = 0.0
    favourites: float = 0.25
    min_tag_products: int = 3
    price_bands: int = 5


def _one_hot(values: Strs, prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    names, inverse = np.unique(values, return_inverse=True)
    known = names[inverse] != ""
    rows = np.flatnonzero(known)
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, inverse[known])), shape=(len(values), len(names)))
    return matrix, [f"{prefix}:{name}" for name in names]


def _multi_hot(lists: list[tuple[str, ...]], prefix: str, min_rows: int) -> tuple[sp.csr_matrix, list[str]]:
    lengths = np.fromiter((len(tags) for tags in lists), dtype=np.int64, count=len(lists))
    flat = np.array([tag for tags in lists for tag in tags], dtype=np.str_)
    rows = np.repeat(np.arange(len(lists)), lengths)
    if len(flat) == 0:
        return sp.csr_matrix((len(lists), 0)), []
    names, inverse = np.unique(flat, return_inverse=True)
    matrix = sp.csr_matrix((np.ones(len(flat)), (rows, inverse)), shape=(len(lists), len(names)))
    matrix.data[:] = 1.0  # a tag repeated on one product counts once
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    common = np.flatnonzero(np.asarray((matrix > 0).sum(axis=0)).ravel() >= min_rows)
    return matrix[:, common].tocsr(), [f"{prefix}:{names[i]}" for i in common]


def _price_bands(price: Floats, bands: int) -> Strs:
    known = np.isfinite(price)
    out = np.full(len(price), "", dtype=object)
    if known.sum() >= bands:
        edges = np.quantile(price[known], np.linspace(0, 1, bands + 1)[1:-1])
        out[known] = [f"band{b}" for b in np.searchsorted(edges, price[known], side="right")]
    return out.astype(np.str_)


def _blend(blocks: list[tuple[sp.csr_matrix, float]]) -> sp.csr_matrix:
    """Each block's rows scaled to sum to its weight (blocks a row lacks give up their share), then
    every row normalised to sum 1: the weighting LightFM expects of feature rows."""
    scaled = []
    for matrix, weight in blocks:
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        scale = np.divide(weight, sums, out=np.zeros_like(sums), where=sums > 0)
        scaled.append(sp.diags(scale) @ matrix)
    stacked = sp.hstack(scaled, format="csr")
    sums = np.asarray(stacked.sum(axis=1)).ravel()
    return (sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ stacked).tocsr()


def item_features(
    catalogue: Catalogue, weights: FeatureWeights, *, identity_only: bool = False
) -> tuple[sp.csr_matrix, list[str]]:
    """Items x features: identity, category, brand, price band and tags, weighted by `weights`."""
    n = len(catalogue.product)
    identity = sp.identity(n, format="csr")
    names = [f"product:{p}" for p in catalogue.product]
    if identity_only:
        return identity, names
    category, category_names = _one_hot(catalogue.category, "category")
    brand, brand_names = _one_hot(catalogue.brand, "brand")
    price, price_names = _one_hot(_price_bands(catalogue.price, weights.price_bands), "price")
    tags, tag_names = _multi_hot(catalogue.tags, "tag", weights.min_tag_products)
    matrix = _blend(
        [
            (identity, weights.identity),
            (category, weights.category),
            (brand, weights.brand),
            (price, weights.price),
            (tags, weights.tags),
        ]
    )
    return matrix, names + category_names + brand_names + price_names + tag_names


def user_features(
    members: Strs, facts: MemberFacts | None, weights: FeatureWeights, *, identity_only: bool = False
) -> tuple[sp.csr_matrix, list[str]]:
    """Users x features: identity, segment (tier) and favourite categories, weighted by `weights`
    (the segment's default weight is 0: see EVALUATION.md)."""
    n = len(members)
    identity = sp.identity(n, format="csr")
    names = [f"member:{m}" for m in members]
    if identity_only or facts is None:
        return identity, names
    order = np.argsort(facts.member)
    pos = np.searchsorted(facts.member[order], members)
    pos = np.minimum(pos, max(len(order) - 1, 0))
    known = (facts.member[order][pos] == members) if len(order) else np.zeros(n, dtype=bool)
    rows = np.where(known, order[pos] if len(order) else 0, -1)
    segment = np.where(rows >= 0, facts.segment[np.maximum(rows, 0)] if len(order) else "", "").astype(
        np.str_
    )
    favourites = [facts.favourites[r] if r >= 0 else () for r in rows]
    seg_matrix, seg_names = _one_hot(segment, "segment")
    fav_matrix, fav_names = _multi_hot(favourites, "favourite", 1)
    matrix = _blend(
        [(identity, weights.identity), (seg_matrix, weights.segment), (fav_matrix, weights.favourites)]
    )
    return matrix, names + seg_names + fav_names


def sample_weights(interactions: Interactions, *, quantity_power: float = 0.0) -> Floats:
    """Per-pair training weight: orders decayed by age (recent purchases count more), optionally times
    quantity**power; scaled to mean 1 so the learning rate means the same on every store."""
    weight = interactions.recency * np.power(np.maximum(interactions.quantity, 1.0), quantity_power)
    mean = weight.mean() if len(weight) else 1.0
    return weight / mean if mean > 0 else weight


def interaction_matrix(
    interactions: Interactions, n_items: int, values: Floats | None = None
) -> sp.coo_matrix:
    """Users x items in COO (LightFM wants COO, and the same order for interactions and weights)."""
    data = np.ones(len(interactions.user)) if values is None else values
    return sp.coo_matrix(
        (data.astype(np.float32), (interactions.user, interactions.item)),
        shape=(interactions.n_users, n_items),
    )
