"""The three lists for every member at once: buy again, discover, and mixed.

Vectorised over members: buy-again works on the interaction pairs (a sort, not a loop), discover on
chunks of members as one matrix product each (scores, masks, threshold top-K), and mixed is a merge of
the two by their calibrated probabilities.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Generator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, fields

import numpy as np
from numpy.typing import NDArray

from recommender import ranking, workers
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Floats, Interactions, Ints, Strs
from recommender.embeddings import Embeddings
from recommender.metrics import BLOCK, descending_keys, top_k
from recommender.mixed import mix
from recommender.needs import Population
from recommender.ranking import Context, Logistic, sigmoid

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

# Members per matrix product (a 256 x 10,000 float32 block is 10 MB). Measured per member on one
# thread, discover over 10,000 products: 64 members 18.5 us, 128 16.7, 256 15.9, 512 16.8, 1,024 22.2
# (each product packs the product matrix again; past a few MB the scores no longer stay in cache).
CHUNK = 256
# Members per block handed to publishing while the next block is computed.
STREAM_BLOCK = 16_384
# Members per task of buy-again and of mixed: their arrays stay in cache (per member on one thread,
# buy-again 2.4 us at 2,048-4,096 members and 3.1 at 16,384; mixed 0.66 us and 1.1).
PART = 4096


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


def durable_products(interactions: Interactions, catalogue: Catalogue) -> NDArray[np.bool_]:
    """Per product: bought by many, rebought by almost none, and not declared consumable."""
    n_items = len(catalogue.product)
    buyers = np.bincount(interactions.item, minlength=n_items)
    repeaters = np.bincount(interactions.item[interactions.orders >= 2], minlength=n_items)
    share = np.divide(repeaters, buyers, out=np.ones(n_items), where=buyers > 0)
    durable: NDArray[np.bool_] = (buyers >= DURABLE_MIN_BUYERS) & (share < DURABLE_REPEAT_SHARE)
    durable &= ~(catalogue.consumable_days > 0)
    return durable


def _recently(durable: NDArray[np.bool_], interactions: Interactions) -> NDArray[np.bool_]:
    since = (interactions.until - interactions.last_at) / SECONDS_PER_DAY
    result: NDArray[np.bool_] = durable[interactions.item] & (since < DURABLE_DAYS)
    return result


def durable_recent(interactions: Interactions, catalogue: Catalogue) -> NDArray[np.bool_]:
    """Pairs to leave out of buy-again: a durable product the member bought within DURABLE_DAYS."""
    return _recently(durable_products(interactions, catalogue), interactions)


def _grouped(user: Ints, n_users: int) -> tuple[Ints, Ints]:
    """Pair indexes ordered by member (stable; no sort when they already are, as both sources give
    them) and where each member's run starts in that order (n_users + 1 bounds)."""
    by_user = np.arange(len(user)) if np.all(user[1:] >= user[:-1]) else np.argsort(user, kind="stable")
    return by_user, np.searchsorted(user[by_user], np.arange(n_users + 1))


def _runs(starts: Ints, users: Ints) -> tuple[Ints, Ints]:
    """For the runs starts[u]:starts[u + 1] of these members: which member (position in `users`) and
    which index each element is, without a Python loop."""
    first = starts[users]
    counts = starts[users + 1] - first
    row = np.repeat(np.arange(len(users)), counts)
    offset = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    return row, np.repeat(first, counts) + offset


Lists = tuple[Ints, NDArray[np.float32], NDArray[np.int8]]
"""Per member row, k slots: product indexes (-1 empty), calibrated scores, reason codes."""


class _Again:
    """Buy-again, prepared once from every pair (population rhythms, durable products, pairs grouped
    by member: none of it needs the context, so it can run beside `Context.build`), then run on any
    set of members: their pairs' rhythms and P(bought again within the horizon), each member's k best.
    Per block, the pair arrays stay in cache and are never made for every pair at once."""

    def __init__(self, rec: Recommender, pairs: Interactions, catalogue: Catalogue, k: int) -> None:
        self.rec, self.pairs, self.catalogue, self.k = rec, pairs, catalogue, k
        self.population = Population.learn(pairs, catalogue)
        self.durable = durable_products(pairs, catalogue)
        self.by_user, self.starts = _grouped(pairs.user, pairs.n_users)

    def __call__(self, users: Ints, context: Context) -> Lists:
        row, at = _runs(self.starts, users)
        sub = self.pairs.subset(self.by_user[at])
        r = self.population.rhythm_of(sub, self.catalogue)
        model_score = ranking.pair_scores(self.rec.embeddings, sub.user, sub.item)
        prob = sigmoid(self.rec.again.logit(ranking.again_features(sub, r, context, model_score)))
        allowed = self.catalogue.active[sub.item] & ~_recently(self.durable, sub)
        # Ranked by the float32 scores they are published with (float64 order differs only in ties there),
        # ties by pair; products left out score -1, behind every probability.
        prob32: NDArray[np.float32] = np.where(allowed, prob, -1.0).astype(np.float32)
        order = np.argsort((row << 32) | descending_keys(prob32).astype(np.int64), kind="stable")
        row = row[order]
        rank = np.arange(len(order)) - np.searchsorted(row, np.arange(len(users)))[row]
        keep = (rank < self.k) & (prob32[order] >= 0)
        row, rank, order = row[keep], rank[keep], order[keep]
        ratio = r.due_ratio(sub)[order]
        due = (ratio >= 0.75) & (ratio <= 2.0) & (r.confidence[order] >= 0.3)
        items = np.full((len(users), self.k), -1, dtype=np.int64)
        scores = np.full((len(users), self.k), -np.inf, dtype=np.float32)
        reasons = np.full((len(users), self.k), BOUGHT_BEFORE, dtype=np.int8)
        items[row, rank] = sub.item[order]
        scores[row, rank] = prob32[order]
        reasons[row, rank] = np.where(due, DUE_AGAIN, BOUGHT_BEFORE)
        return items, scores, reasons


def buy_again(rec: Recommender, pairs: Interactions, catalogue: Catalogue, context: Context, k: int) -> Lists:
    """Each member's own products ranked by P(bought again within the horizon)."""
    return _Again(rec, pairs, catalogue, k)(np.arange(pairs.n_users), context)


class _Discover:
    """Discover, prepared once per precompute and run on chunks of members.

    The ranker's logit is a_u (u . v_i + b_i) + w_pop popularity_i + d_u, with a_u = w_z / scale_u
    and d_u every member-only term, so a chunk of members is ranked by one matrix product of
    augmented matrices [a_u u, a_u, 1] x [v_i, b_i, w_pop popularity_i] over the products still sold
    (padded with empty columns to whole `top_k` blocks), into a buffer each thread reuses. Bought
    products are masked, `top_k` picks, and the probability of the k survivors is
    sigmoid(product + d_u): no feature matrix, no second scoring of the pairs."""

    def __init__(
        self, rec: Recommender, pairs: Interactions, catalogue: Catalogue, context: Context, k: int
    ) -> None:
        emb, ranker = rec.embeddings, rec.discover
        per_unit = ranker.coef / ranker.scale
        scale = per_unit[0] / context.score_scale
        self.scaled_mean = scale * context.score_mean  # the z term's share of d_u
        self.member_term = (
            ranker.intercept
            - float(per_unit @ ranker.mean)
            - self.scaled_mean
            + per_unit[2] * context.member_breadth
            + per_unit[3] * context.member_idle
        )
        self.user_vectors, self.scale = emb.user_vectors, scale.astype(np.float32)
        sold = np.flatnonzero(catalogue.active)
        self.sold, self.width, self.k = len(sold), -(-len(sold) // BLOCK) * BLOCK, k
        pad = self.width - self.sold
        self.items_t = np.zeros((emb.item_vectors.shape[1] + 2, self.width), dtype=np.float32)
        self.items_t[:-2, : self.sold] = emb.item_vectors[sold].T
        self.items_t[-2, : self.sold] = emb.item_bias[sold]
        self.pop_part = np.concatenate([per_unit[1] * context.popularity[sold], np.zeros(pad)])
        self.items_t[-1] = self.pop_part
        self.item_of = np.concatenate([sold, np.full(pad, -1, dtype=np.int64)])
        # Each member's bought products still sold, as columns: bought[starts[u]:starts[u + 1]].
        column_of = np.full(len(catalogue.product), -1, dtype=np.int64)
        column_of[sold] = np.arange(self.sold)
        by_user, _ = _grouped(pairs.user, pairs.n_users)
        columns = column_of[pairs.item[by_user]]
        kept = columns >= 0
        self.bought = columns[kept]
        self.starts = np.searchsorted(pairs.user[by_user][kept], np.arange(pairs.n_users + 1))
        self._buffers = threading.local()

    def _scores(self, block: Ints) -> NDArray[np.float32]:
        """The chunk's ranking scores, bought products and padding at -inf, in this thread's buffer."""
        buffer: NDArray[np.float32] | None = getattr(self._buffers, "scores", None)
        if buffer is None or len(buffer) < len(block):
            buffer = self._buffers.scores = np.empty((len(block), self.width), dtype=np.float32)
        ranked = buffer[: len(block)]
        a = self.scale[block][:, None]
        np.matmul(np.hstack([self.user_vectors[block] * a, a, np.ones_like(a)]), self.items_t, out=ranked)
        ranked[:, self.sold :] = -np.inf
        row, at = _runs(self.starts, block)
        ranked[row, self.bought[at]] = -np.inf
        return ranked

    def __call__(self, block: Ints) -> Lists:
        """One chunk of members' discover lists."""
        columns, values = top_k(self._scores(block), self.k)
        pop_part = self.pop_part[columns]
        z_part = values - pop_part - self.scaled_mean[block][:, None]
        found = columns >= 0
        items = np.where(found, self.item_of[columns], -1)
        probability = sigmoid(values + self.member_term[block][:, None])
        scores = np.where(found, probability, -np.inf).astype(np.float32)
        reasons = np.where(z_part >= pop_part, SIMILAR_MEMBERS, POPULAR_NOW).astype(np.int8)
        return items, scores, reasons


def _joined(parts: list[Future[Lists]]) -> Lists:
    items, scores, reasons = zip(*(part.result() for part in parts), strict=True)
    return np.concatenate(items), np.concatenate(scores), np.concatenate(reasons)


def _chunks(users: Ints, chunk: int) -> list[Ints]:
    return [users[lo : lo + chunk] for lo in range(0, len(users), chunk)] or [users]


def discover(
    rec: Recommender,
    pairs: Interactions,
    catalogue: Catalogue,
    context: Context,
    k: int,
    users: Ints,
    chunk: int = CHUNK,
    threads: int = 1,
) -> Lists:
    """Products each member never bought, ranked by P(bought within the horizon) (see `_Discover`).
    Chunks of members run on `threads` threads (numpy and BLAS release the GIL)."""
    found = _Discover(rec, pairs, catalogue, context, k)
    with workers.pool(threads) as pool:
        return _joined([workers.submit(pool, found, part) for part in _chunks(users, chunk)])


def _mixed(
    pool: Executor | None, again: NDArray[np.float32], found: NDArray[np.float32], k: int
) -> tuple[NDArray[np.int8], Ints]:
    """`mix` in parts of PART members on the pool."""
    parts = [
        workers.submit(pool, mix, again[lo : lo + PART], found[lo : lo + PART], k) for lo in _starts(again)
    ]
    sources, positions = zip(*(part.result() for part in parts), strict=True)
    return np.concatenate(sources), np.concatenate(positions)


def _starts(rows: NDArray[np.generic]) -> range:
    return range(0, max(len(rows), 1), PART)


def stream(
    rec: Recommender,
    pairs: Interactions,
    catalogue: Catalogue,
    *,
    k: int,
    users: Ints | None = None,
    block: int = STREAM_BLOCK,
    chunk: int = CHUNK,
    threads: int = 1,
) -> Generator[TopLists, None, None]:
    """All three lists for `users` (indexes into `pairs.members`; default every member with history),
    in blocks of `block` members, in order: what publishing overlaps with. `pairs` must be indexed
    like the model: the same members and catalogue it was trained on.

    On the pool, in this order, so that no thread waits while there is work: buy-again's preparation
    (rhythms: beside `Context.build` here), then discover's chunks one block ahead of the block being
    finished, that block's buy-again (its preparation is done by then), then mixed, both in parts."""
    n_items = len(catalogue.product)
    chosen = np.arange(pairs.n_users) if users is None else users
    parts = [chosen[lo : lo + block] for lo in range(0, max(len(chosen), 1), block)]
    with workers.pool(threads) as pool:
        again = workers.submit(pool, _Again, rec, pairs, catalogue, k)
        context = Context.build(pairs, rec.embeddings, recent_buyers(pairs, n_items, rec.popularity_days))
        found = _Discover(rec, pairs, catalogue, context, k)

        def discovering(part: Ints) -> list[Future[Lists]]:
            return [workers.submit(pool, found, c) for c in _chunks(part, chunk)]

        ahead = discovering(parts[0])
        for i, part in enumerate(parts):
            found_parts = ahead
            if i + 1 < len(parts):
                ahead = discovering(parts[i + 1])
            again_parts = [
                workers.submit(pool, lambda p: again.result()(p, context), part[lo : lo + PART])
                for lo in _starts(part)
            ]
            again_items, again_scores, again_reasons = _joined(again_parts)
            items, scores, reasons = _joined(found_parts)
            source, position = _mixed(pool, again_scores, scores, k)
            yield TopLists(
                members=pairs.members[part],
                again_items=again_items,
                again_scores=again_scores,
                again_reasons=again_reasons,
                discover_items=items,
                discover_scores=scores,
                discover_reasons=reasons,
                mixed_source=source,
                mixed_position=position,
            )


def compute(
    rec: Recommender,
    pairs: Interactions,
    catalogue: Catalogue,
    *,
    k: int,
    users: Ints | None = None,
    chunk: int = CHUNK,
    threads: int = 1,
) -> TopLists:
    """All three lists for `users` at once (computed in `stream`'s blocks, which keep the buy-again
    pairs and the merge's arrays in cache)."""
    blocks = list(stream(rec, pairs, catalogue, k=k, users=users, chunk=chunk, threads=threads))
    if len(blocks) == 1:
        return blocks[0]
    return TopLists(*(np.concatenate([getattr(b, f.name) for b in blocks]) for f in fields(TopLists)))
