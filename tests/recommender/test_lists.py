"""The vectorised lists equal a brute-force, member-by-member reference."""

from __future__ import annotations

import numpy as np
import pytest

from recommender import dataset, lists, ranking
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Interactions
from recommender.embeddings import Embeddings
from recommender.lists import Recommender
from recommender.metrics import top_k
from recommender.needs import rhythm
from recommender.ranking import Context, Logistic

N_USERS, N_ITEMS, K = 37, 60, 8


def _world(seed: int = 3) -> tuple[Recommender, Interactions, Catalogue]:
    rng = np.random.default_rng(seed)
    catalogue = Catalogue(
        product=np.array([f"p{i:03d}" for i in range(N_ITEMS)], dtype=np.str_),
        category=np.array([f"c{i % 4}" for i in range(N_ITEMS)], dtype=np.str_),
        brand=np.full(N_ITEMS, "", dtype=np.str_),
        price=rng.uniform(1, 50, N_ITEMS),
        tags=[() for _ in range(N_ITEMS)],
        consumable_days=np.where(np.arange(N_ITEMS) % 5 == 0, 30.0, np.nan),
        active=np.arange(N_ITEMS) % 11 != 0,
    )
    n_rows = 400
    purchases = dataset.Purchases(
        member=np.array([f"m{u:02d}" for u in rng.integers(0, N_USERS, n_rows)], dtype=np.str_),
        product=catalogue.product[rng.integers(0, N_ITEMS, n_rows)],
        at=rng.uniform(0, 200, n_rows) * SECONDS_PER_DAY,
        quantity=rng.integers(1, 4, n_rows).astype(float),
    )
    pairs = dataset.aggregate(purchases, catalogue, until=200 * SECONDS_PER_DAY, half_life_days=60)
    emb = Embeddings(
        user_vectors=rng.normal(size=(pairs.n_users, 5)).astype(np.float32),
        item_vectors=rng.normal(size=(N_ITEMS, 5)).astype(np.float32),
        item_bias=rng.normal(size=N_ITEMS).astype(np.float32),
    )
    n_again, n_disc = len(ranking.AGAIN_FEATURES), len(ranking.DISCOVER_FEATURES)
    rec = Recommender(
        members=pairs.members,
        products=catalogue.product,
        embeddings=emb,
        again=Logistic(
            rng.normal(size=n_again), rng.normal(size=n_again), rng.uniform(0.5, 2, n_again), -2.0
        ),
        discover=Logistic(
            np.array([0.8, 0.5, 0.1, -0.2]), rng.normal(size=n_disc), rng.uniform(0.5, 2, n_disc), -4.0
        ),
        half_life_days=60,
        horizon_days=28,
        popularity_days=28,
    )
    return rec, pairs, catalogue


def _context(rec: Recommender, pairs: Interactions, catalogue: Catalogue) -> Context:
    return Context.build(pairs, rec.embeddings, lists.recent_buyers(pairs, N_ITEMS, rec.popularity_days))


@pytest.mark.parametrize("threads", [1, 2])
def test_discover_equals_brute_force(threads: int) -> None:
    rec, pairs, catalogue = _world()
    context = _context(rec, pairs, catalogue)
    users = np.arange(pairs.n_users)
    items, scores, _ = lists.discover(rec, pairs, catalogue, context, K, users, chunk=7, threads=threads)
    for u in users:
        bought = set(pairs.item[pairs.user == u].tolist())
        candidates = np.array([i for i in range(N_ITEMS) if i not in bought and catalogue.active[i]])
        raw = np.array(
            [
                rec.embeddings.user_vectors[u] @ rec.embeddings.item_vectors[i] + rec.embeddings.item_bias[i]
                for i in candidates
            ],
            dtype=np.float64,
        )
        x = ranking.discover_features(np.full(len(candidates), u), candidates, context, raw)
        prob = ranking.sigmoid(rec.discover.logit(x))
        best = np.argsort(-prob, kind="stable")[:K]
        assert items[u].tolist() == candidates[best].tolist()
        np.testing.assert_allclose(scores[u], prob[best], rtol=1e-4)


def test_buy_again_equals_brute_force() -> None:
    rec, pairs, catalogue = _world()
    context = _context(rec, pairs, catalogue)
    r = rhythm(pairs, catalogue)
    items, scores, _ = lists.buy_again(rec, pairs, catalogue, context, K, r)
    model_score = ranking.pair_scores(rec.embeddings, pairs.user, pairs.item)
    prob = ranking.sigmoid(rec.again.logit(ranking.again_features(pairs, r, context, model_score)))
    allowed = catalogue.active[pairs.item] & ~lists.durable_recent(pairs, catalogue)
    for u in range(pairs.n_users):
        own = np.flatnonzero((pairs.user == u) & allowed)
        best = own[np.argsort(-prob[own], kind="stable")][:K]
        expected = pairs.item[best].tolist() + [-1] * (K - len(best))
        assert items[u].tolist() == expected
        np.testing.assert_allclose(scores[u][: len(best)], prob[best], rtol=1e-5)


def test_mixed_interleaves_by_score_and_keeps_each_lists_order() -> None:
    rec, pairs, catalogue = _world()
    top = lists.compute(rec, pairs, catalogue, k=K, chunk=5)
    mixed = top.mixed_items()
    for u in range(len(top.members)):
        again = [i for i in top.again_items[u] if i >= 0]
        found = [i for i in top.discover_items[u] if i >= 0]
        pool = sorted(
            [(s, i) for s, i in zip(top.again_scores[u], top.again_items[u], strict=True) if i >= 0]
            + [(s, i) for s, i in zip(top.discover_scores[u], top.discover_items[u], strict=True) if i >= 0],
            key=lambda t: -t[0],
        )[:K]
        assert sorted(i for i in mixed[u] if i >= 0) == sorted(i for _, i in pool)
        taken = [i for i in mixed[u] if i >= 0]
        assert [i for i in taken if i in again] == again[: len([i for i in taken if i in again])]
        assert [i for i in taken if i in found] == found[: len([i for i in taken if i in found])]


def test_inactive_products_are_never_recommended() -> None:
    rec, pairs, catalogue = _world()
    top = lists.compute(rec, pairs, catalogue, k=K)
    inactive = set(np.flatnonzero(~catalogue.active).tolist())
    for matrix in (top.again_items, top.discover_items, top.mixed_items()):
        assert not inactive & set(matrix.ravel().tolist())


def test_a_durable_product_bought_recently_is_not_offered_again() -> None:
    _, _, catalogue = _world()
    day = SECONDS_PER_DAY
    # p001 (not consumable): 25 buyers, nobody rebuys: durable. p002: everybody rebuys.
    rows = [(f"m{u:02d}", "p001", 10.0 + u * 10) for u in range(25)]
    rows += [(f"m{u:02d}", "p002", d) for u in range(25) for d in (1.0, 100.0)]
    purchases = dataset.Purchases(
        member=np.array([r[0] for r in rows], dtype=np.str_),
        product=np.array([r[1] for r in rows], dtype=np.str_),
        at=np.array([r[2] * day for r in rows]),
        quantity=np.ones(len(rows)),
    )
    pairs = dataset.aggregate(purchases, catalogue, until=600 * day, half_life_days=60)
    flags = lists.durable_recent(pairs, catalogue)
    durable = catalogue.product[pairs.item] == "p001"
    recent = (pairs.until - pairs.last_at) / day < lists.DURABLE_DAYS
    assert flags[durable & recent].all()
    assert (durable & recent).any()
    assert not flags[durable & ~recent].any()
    assert (durable & ~recent).any()
    assert not flags[~durable].any()


@pytest.mark.parametrize("k", [1, 5, 60, 70])
def test_top_k_equals_a_full_sort(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(9, 60)).astype(np.float32)
    scores[0, :] = -np.inf
    scores[1, 3:] = -np.inf
    items, _values = top_k(scores, k)
    for row in range(9):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        expected = finite[np.argsort(-scores[row][finite], kind="stable")][:k].tolist()
        assert items[row].tolist() == expected + [-1] * (k - len(expected))


@pytest.mark.parametrize(("n_cols", "k"), [(5008, 20), (4099, 50), (20000, 7), (10000, 50)])
def test_top_k_with_candidate_blocks_equals_a_full_sort(n_cols: int, k: int) -> None:
    rng = np.random.default_rng(n_cols)
    scores = rng.normal(size=(50, n_cols)).astype(np.float32)
    scores[0, :] = -np.inf
    scores[1, : n_cols - 5] = -np.inf  # fewer finite values than k
    scores[2, ::3] = -np.inf
    scores[3] += np.linspace(0, 3, n_cols, dtype=np.float32)  # the best all in the last columns
    scores[4, 7::11] += 10  # the best spread over many blocks
    items, values = top_k(scores, k)
    for row in range(50):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        expected = finite[np.argsort(-scores[row][finite], kind="stable")][:k].tolist()
        assert items[row].tolist() == expected + [-1] * (k - len(expected))
        np.testing.assert_array_equal(values[row][: len(expected)], scores[row][expected])
