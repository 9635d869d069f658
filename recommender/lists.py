"""The three lists for every member at once: buy again, discover, and mixed.

Vectorised over members: buy-again works on the interaction pairs (a sort, not a loop), discover on
chunks of members as one matrix product each (scores, masks, `argpartition`), and mixed is a merge of
the two by their calibrated probabilities.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from recommender import ranking
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Floats, Interactions, Ints, Strs
from recommender.embeddings import Embeddings
from recommender.metrics import top_k
from recommender.needs import Rhythm, rhythm
from recommender.ranking import Context, Logistic

REASONS = (
    "bought_before",
    "due_again",
    "similar_members",
    "popular_now",
    "popular_in_favourite_categories",
    "popular",
)
"""What `reason` says, indexed by the reason codes below."""
BOUGHT_BEFORE, DUE_AGAIN, SIMILAR_MEMBERS, POPULAR_NOW, POPULAR_IN_FAVOURITES, POPULAR = range(6)

# A product bought by many and rebought by almost none, and not declared consumable, is durable: one
# bought in the last year is not offered again.
DURABLE_MIN_BUYERS = 20
DURABLE_REPEAT_SHARE = 0.02
DURABLE_DAYS = 365.0


@dataclass(frozen=True)
class Recommender:
    """A trained store model, as plain arrays: what an artifact stores and precompute needs."""

    members: Strs
    products: Strs
    embeddings: Embeddings
    again: Logistic
    discover: Logistic
    half_life_days: float
    horizon_days: float
    popularity_days: float

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            members=self.members,
            products=self.products,
            user_vectors=self.embeddings.user_vectors,
            item_vectors=self.embeddings.item_vectors,
            item_bias=self.embeddings.item_bias,
            again=self.again.as_array(),
            discover=self.discover.as_array(),
            windows=np.array([self.half_life_days, self.horizon_days, self.popularity_days]),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Recommender:
        with np.load(io.BytesIO(data), allow_pickle=False) as a:
            half_life, horizon, popularity = (float(x) for x in a["windows"])
            return cls(
                members=a["members"],
                products=a["products"],
                embeddings=Embeddings(a["user_vectors"], a["item_vectors"], a["item_bias"]),
                again=Logistic.from_array(a["again"]),
                discover=Logistic.from_array(a["discover"]),
                half_life_days=half_life,
                horizon_days=horizon,
                popularity_days=popularity,
            )


@dataclass(frozen=True)
class TopLists:
    """Per member row (`members`): product indexes (-1 = empty), calibrated scores and reason codes.
    Mixed is stored as which list (0 buy again, 1 discover, -1 empty) and the position in it."""

    members: Strs
    again_items: Ints
    again_scores: NDArray[np.float32]
    again_reasons: NDArray[np.int8]
    discover_items: Ints
    discover_scores: NDArray[np.float32]
    discover_reasons: NDArray[np.int8]
    mixed_source: NDArray[np.int8] = field(repr=False)
    mixed_position: Ints = field(repr=False)

    def mixed_items(self) -> Ints:
        again = np.take_along_axis(self.again_items, np.maximum(self.mixed_position, 0), axis=1)
        disc = np.take_along_axis(self.discover_items, np.maximum(self.mixed_position, 0), axis=1)
        out: Ints = np.where(self.mixed_source == 0, again, np.where(self.mixed_source == 1, disc, -1))
        return out


def recent_buyers(interactions: Interactions, n_items: int, days: float) -> Floats:
    """Distinct members whose last purchase of each product falls in the last `days` before `until`."""
    recent = interactions.last_at >= interactions.until - days * SECONDS_PER_DAY
    return np.bincount(interactions.item[recent], minlength=n_items).astype(np.float64)


def durable_recent(interactions: Interactions, catalogue: Catalogue) -> NDArray[np.bool_]:
    """Pairs to leave out of buy-again: a durable product the member bought within DURABLE_DAYS."""
    n_items = len(catalogue.product)
    buyers = np.bincount(interactions.item, minlength=n_items)
    repeaters = np.bincount(interactions.item[interactions.orders >= 2], minlength=n_items)
    share = np.divide(repeaters, buyers, out=np.ones(n_items), where=buyers > 0)
    durable = (buyers >= DURABLE_MIN_BUYERS) & (share < DURABLE_REPEAT_SHARE)
    durable &= ~(catalogue.consumable_days > 0)
    since = (interactions.until - interactions.last_at) / SECONDS_PER_DAY
    result: NDArray[np.bool_] = durable[interactions.item] & (since < DURABLE_DAYS)
    return result


def _per_member_top(user: Ints, score: Floats, n_users: int, k: int) -> tuple[Ints, Ints]:
    """For candidates given as (user, score) rows: the row numbers of each user's k best, as an
    (n_users x k) matrix (-1 = empty), and nothing looped per user."""
    order = np.lexsort((-score, user))
    sorted_user = user[order]
    starts = np.searchsorted(sorted_user, np.arange(n_users))
    rank = np.arange(len(order)) - starts[sorted_user]
    keep = rank < k
    out = np.full((n_users, k), -1, dtype=np.int64)
    out[sorted_user[keep], rank[keep]] = order[keep]
    return out, starts


def buy_again(
    rec: Recommender, pairs: Interactions, catalogue: Catalogue, context: Context, k: int, r: Rhythm
) -> tuple[Ints, NDArray[np.float32], NDArray[np.int8]]:
    """Each member's own products ranked by P(bought again within the horizon)."""
    model_score = ranking.pair_scores(rec.embeddings, pairs.user, pairs.item)
    prob = ranking.sigmoid(rec.again.logit(ranking.again_features(pairs, r, context, model_score)))
    allowed = catalogue.active[pairs.item] & ~durable_recent(pairs, catalogue)
    prob = np.where(allowed, prob, -1.0)
    rows, _ = _per_member_top(pairs.user, prob, pairs.n_users, k)
    valid = rows >= 0
    safe = np.maximum(rows, 0)
    chosen_ok = valid & (prob[safe] >= 0)
    items = np.where(chosen_ok, pairs.item[safe], -1)
    scores = np.where(chosen_ok, prob[safe], -np.inf).astype(np.float32)
    ratio = r.due_ratio(pairs)
    due = (ratio >= 0.75) & (ratio <= 2.0) & (r.confidence >= 0.3)
    reasons = np.where(due[safe], DUE_AGAIN, BOUGHT_BEFORE).astype(np.int8)
    return items, scores, reasons


def discover(
    rec: Recommender,
    pairs: Interactions,
    catalogue: Catalogue,
    context: Context,
    k: int,
    users: Ints,
    chunk: int = 1024,
    threads: int = 1,
) -> tuple[Ints, NDArray[np.float32], NDArray[np.int8]]:
    """Products each member never bought, ranked by P(bought within the horizon).

    Within a member the ranker's logit is a_u * (u . v_i + b_i) + c * popularity_i plus member terms,
    so each chunk of members is ranked by one matrix product of augmented matrices
    [a_u u, a_u, 1] x [v_i, b_i, c popularity_i]; bought products are masked, `top_k` picks, and the
    calibrated probability is computed for the k survivors only. Chunks run on `threads` threads
    (numpy and BLAS release the GIL)."""
    emb = rec.embeddings
    per_unit = rec.discover.coef / rec.discover.scale
    weight_z, weight_pop = float(per_unit[0]), float(per_unit[1])
    # Inactive products get a hopeless item term (finite: BLAS kernels may turn 0 x inf into NaN).
    item_term = np.where(catalogue.active, weight_pop * context.popularity, -1e30).astype(np.float32)
    items_matrix = np.hstack([emb.item_vectors, emb.item_bias[:, None], item_term[:, None]]).astype(
        np.float32
    )
    items_t = np.ascontiguousarray(items_matrix.T)
    scale = (weight_z / context.score_scale).astype(np.float32)
    by_user = np.argsort(pairs.user, kind="stable")
    starts = np.searchsorted(pairs.user[by_user], np.arange(pairs.n_users + 1))
    items_out = np.full((len(users), k), -1, dtype=np.int64)
    scores_out = np.full((len(users), k), -np.inf, dtype=np.float32)
    reasons_out = np.full((len(users), k), SIMILAR_MEMBERS, dtype=np.int8)

    def one(lo: int) -> None:
        block = users[lo : lo + chunk]
        a = scale[block][:, None]
        members = np.hstack([emb.user_vectors[block] * a, a, np.ones_like(a)]).astype(np.float32)
        ranked = members @ items_t
        # Mask what each member already bought: their pairs, gathered without a Python loop.
        counts = starts[block + 1] - starts[block]
        rows = np.repeat(np.arange(len(block)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        ranked[rows, pairs.item[by_user[np.repeat(starts[block], counts) + offsets]]] = -np.inf
        items, values = top_k(ranked, k)
        valid = (items >= 0) & (values > -1e29)
        safe = np.maximum(items, 0)
        member = np.repeat(block, k)
        raw = ranking.pair_scores(emb, member, safe.ravel())
        features = ranking.discover_features(member, safe.ravel(), context, raw)
        prob = ranking.sigmoid(rec.discover.logit(features)).reshape(len(block), k)
        z_part = weight_z * features[:, 0].reshape(len(block), k)
        pop_part = weight_pop * features[:, 1].reshape(len(block), k)
        items_out[lo : lo + len(block)] = np.where(valid, items, -1)
        scores_out[lo : lo + len(block)] = np.where(valid, prob, -np.inf)
        reasons_out[lo : lo + len(block)] = np.where(z_part >= pop_part, SIMILAR_MEMBERS, POPULAR_NOW)

    starts_of_chunks = range(0, len(users), chunk)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, starts_of_chunks))
    else:
        for lo in starts_of_chunks:
            one(lo)
    return items_out, scores_out, reasons_out


def mix(again: NDArray[np.float32], found: NDArray[np.float32], k: int) -> tuple[NDArray[np.int8], Ints]:
    """Interleave two score-sorted lists by score: which list each mixed slot takes, and from where."""
    both = np.concatenate([again, found], axis=1)
    order = np.argsort(-both, axis=1, kind="stable")[:, :k]
    width = again.shape[1]
    picked = np.take_along_axis(both, order, axis=1)
    source = np.where(order < width, 0, 1).astype(np.int8)
    source[~np.isfinite(picked)] = -1
    return source, np.where(order < width, order, order - width)


def compute(
    rec: Recommender,
    pairs: Interactions,
    catalogue: Catalogue,
    *,
    k: int,
    users: Ints | None = None,
    chunk: int = 1024,
    threads: int = 1,
) -> TopLists:
    """All three lists for `users` (indexes into `pairs.members`; default every member with history).
    `pairs` must be indexed like the model: the same members and catalogue it was trained on."""
    n_items = len(catalogue.product)
    context = Context.build(pairs, rec.embeddings, recent_buyers(pairs, n_items, rec.popularity_days))
    r = rhythm(pairs, catalogue)
    chosen = np.arange(pairs.n_users) if users is None else users
    again_items, again_scores, again_reasons = buy_again(rec, pairs, catalogue, context, k, r)
    found = discover(rec, pairs, catalogue, context, k, chosen, chunk, threads)
    source, position = mix(again_scores[chosen], found[1], k)
    return TopLists(
        members=pairs.members[chosen],
        again_items=again_items[chosen],
        again_scores=again_scores[chosen],
        again_reasons=again_reasons[chosen],
        discover_items=found[0],
        discover_scores=found[1],
        discover_reasons=found[2],
        mixed_source=source,
        mixed_position=position,
    )
