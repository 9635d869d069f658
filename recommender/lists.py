"""The three lists for every member at once: buy again, discover, and mixed.

Vectorised over members: buy-again works on the interaction pairs (a sort, not a loop), discover on
chunks of members as one matrix product each (scores, masks, `argpartition`), and mixed is a merge of
the two by their calibrated probabilities.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from recommender import ranking
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Floats, Interactions, Ints, Strs
from recommender.embeddings import Embeddings
from recommender.metrics import BLOCK, descending_keys, top_k
from recommender.needs import Rhythm, rhythm
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

# Members per matrix product (a 512 x 10,000 float32 block is 20 MB): measured, sizes from 256 to
# 2,048 were within noise of each other per member, 32 to 128 slower.
CHUNK = 512
# Members per block handed to publishing while the next block is computed.
STREAM_BLOCK = 16_384


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


def _per_member_top(user: Ints, score: NDArray[np.float32], n_users: int, k: int) -> Ints:
    """For candidates given as (user, score) rows: the row numbers of each user's k best, as an
    (n_users x k) matrix (-1 = empty), ties by row; nothing looped per user. One stable sort of
    integer keys (user, then the score's order), where a float sort would cost ten times more."""
    order = np.argsort((user << 32) | descending_keys(score).astype(np.int64), kind="stable")
    sorted_user = user[order]
    starts = np.searchsorted(sorted_user, np.arange(n_users))
    rank = np.arange(len(order)) - starts[sorted_user]
    keep = rank < k
    out = np.full((n_users, k), -1, dtype=np.int64)
    out[sorted_user[keep], rank[keep]] = order[keep]
    return out


def buy_again(
    rec: Recommender, pairs: Interactions, catalogue: Catalogue, context: Context, k: int, r: Rhythm
) -> tuple[Ints, NDArray[np.float32], NDArray[np.int8]]:
    """Each member's own products ranked by P(bought again within the horizon)."""
    model_score = ranking.pair_scores(rec.embeddings, pairs.user, pairs.item)
    prob = ranking.sigmoid(rec.again.logit(ranking.again_features(pairs, r, context, model_score)))
    allowed = catalogue.active[pairs.item] & ~durable_recent(pairs, catalogue)
    # Ranked by the float32 scores they are published with (float64 order differs only in ties there).
    prob32: NDArray[np.float32] = np.where(allowed, prob, -1.0).astype(np.float32)
    rows = _per_member_top(pairs.user, prob32, pairs.n_users, k)
    safe = np.maximum(rows, 0)
    chosen_ok = (rows >= 0) & (prob32[safe] >= 0)
    items = np.where(chosen_ok, pairs.item[safe], -1)
    scores = np.where(chosen_ok, prob32[safe], -np.inf).astype(np.float32)
    ratio = r.due_ratio(pairs)
    due = (ratio >= 0.75) & (ratio <= 2.0) & (r.confidence >= 0.3)
    reasons = np.where(due[safe], DUE_AGAIN, BOUGHT_BEFORE).astype(np.int8)
    return items, scores, reasons


class _Discover:
    """Discover, prepared once per precompute and run on blocks of members.

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
        by_user = np.argsort(pairs.user, kind="stable")
        columns = column_of[pairs.item[by_user]]
        kept = columns >= 0
        self.bought = columns[kept]
        self.starts = np.searchsorted(pairs.user[by_user][kept], np.arange(pairs.n_users + 1))

    def _masked(self, block: Ints) -> tuple[Ints, Ints]:
        """(row in block, column) of every bought product still sold, without a Python loop."""
        starts = self.starts[block]
        counts = self.starts[block + 1] - starts
        rows = np.repeat(np.arange(len(block)), counts)
        offsets = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        return rows, self.bought[np.repeat(starts, counts) + offsets]

    def __call__(
        self, users: Ints, chunk: int, pool: Executor | None
    ) -> tuple[Ints, NDArray[np.float32], NDArray[np.int8]]:
        k = self.k
        items_out = np.full((len(users), k), -1, dtype=np.int64)
        scores_out = np.full((len(users), k), -np.inf, dtype=np.float32)
        reasons_out = np.full((len(users), k), SIMILAR_MEMBERS, dtype=np.int8)
        buffers = threading.local()

        def one(lo: int) -> None:
            block = users[lo : lo + chunk]
            ranked = getattr(buffers, "ranked", None)
            if ranked is None:
                ranked = buffers.ranked = np.empty((chunk, self.width), dtype=np.float32)
            ranked = ranked[: len(block)]
            a = self.scale[block][:, None]
            np.matmul(np.hstack([self.user_vectors[block] * a, a, np.ones_like(a)]), self.items_t, out=ranked)
            ranked[:, self.sold :] = -np.inf
            ranked[self._masked(block)] = -np.inf
            columns, values = top_k(ranked, k)
            pop_part = self.pop_part[columns]
            z_part = values - pop_part - self.scaled_mean[block][:, None]
            found = columns >= 0
            rows = slice(lo, lo + len(block))
            items_out[rows] = np.where(found, self.item_of[columns], -1)
            scores_out[rows] = np.where(found, sigmoid(values + self.member_term[block][:, None]), -np.inf)
            reasons_out[rows] = np.where(z_part >= pop_part, SIMILAR_MEMBERS, POPULAR_NOW)

        with threadpool_limits(1, user_api="blas"):
            if pool is None:
                for lo in range(0, len(users), chunk):
                    one(lo)
            else:
                list(pool.map(one, range(0, len(users), chunk)))
        return items_out, scores_out, reasons_out


def discover(
    rec: Recommender,
    pairs: Interactions,
    catalogue: Catalogue,
    context: Context,
    k: int,
    users: Ints,
    chunk: int = CHUNK,
    threads: int = 1,
) -> tuple[Ints, NDArray[np.float32], NDArray[np.int8]]:
    """Products each member never bought, ranked by P(bought within the horizon) (see `_Discover`).
    Chunks of members run on `threads` threads, BLAS on one thread each (numpy and BLAS release the
    GIL)."""
    with _workers(threads) as pool:
        return _Discover(rec, pairs, catalogue, context, k)(users, chunk, pool)


@contextmanager
def _workers(threads: int) -> Iterator[Executor | None]:
    """A pool of `threads` threads, or None to run in the calling thread."""
    if threads <= 1:
        yield None
        return
    with ThreadPoolExecutor(threads) as pool:
        yield pool


def mix(again: NDArray[np.float32], found: NDArray[np.float32], k: int) -> tuple[NDArray[np.int8], Ints]:
    """Interleave two score-sorted lists by score: which list each mixed slot takes, and from where.
    Ties go to buy-again, then to the earlier slot: one sort of integer keys (score order, then the
    slot, 8 bits as k <= 127) gives what a stable argsort of the scores would, in three quarters of the
    time."""
    both = np.concatenate([again, found], axis=1)
    keys = (descending_keys(both).astype(np.int64) << 8) | np.arange(both.shape[1])
    order = np.sort(keys, axis=1)[:, :k] & 0xFF
    width = again.shape[1]
    picked = np.take_along_axis(both, order, axis=1)
    source = np.where(order < width, 0, 1).astype(np.int8)
    source[~np.isfinite(picked)] = -1
    return source, np.where(order < width, order, order - width)


def _mix_on(
    pool: Executor | None, again: NDArray[np.float32], found: NDArray[np.float32], k: int, chunk: int
) -> tuple[NDArray[np.int8], Ints]:
    """`mix` over chunks of rows on the pool, so that it does not leave the other threads idle."""
    if pool is None or len(again) <= chunk:
        return mix(again, found, k)
    starts = range(0, len(again), chunk)
    parts = list(pool.map(lambda lo: mix(again[lo : lo + chunk], found[lo : lo + chunk], k), starts))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
    like the model: the same members and catalogue it was trained on. With threads, buy-again (one
    vectorised pass over all the pairs) is the first task of the pool that then takes discover's
    chunks, so the two run side by side."""
    n_items = len(catalogue.product)
    context = Context.build(pairs, rec.embeddings, recent_buyers(pairs, n_items, rec.popularity_days))
    chosen = np.arange(pairs.n_users) if users is None else users
    found = _Discover(rec, pairs, catalogue, context, k)

    def again() -> tuple[Ints, NDArray[np.float32], NDArray[np.int8]]:
        return buy_again(rec, pairs, catalogue, context, k, rhythm(pairs, catalogue))

    with _workers(threads) as pool:
        pending = None if pool is None else pool.submit(again)
        again_lists = None
        for lo in range(0, max(len(chosen), 1), block):
            part = chosen[lo : lo + block]
            items, scores, reasons = found(part, chunk, pool)
            if again_lists is None:
                again_lists = again() if pending is None else pending.result()
            again_scores = again_lists[1][part]
            source, position = _mix_on(pool, again_scores, scores, k, chunk)
            yield TopLists(
                members=pairs.members[part],
                again_items=again_lists[0][part],
                again_scores=again_scores,
                again_reasons=again_lists[2][part],
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
    """All three lists for `users` at once (see `stream`)."""
    (top,) = stream(rec, pairs, catalogue, k=k, users=users, block=1 << 62, chunk=chunk, threads=threads)
    return top
