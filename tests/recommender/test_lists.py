"""The vectorised lists equal a brute-force, member-by-member reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from recommender import dataset, lists, mixed, model, ranking
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Floats, Interactions
from recommender.lists import Recommender
from recommender.metrics import top_k
from recommender.needs import rhythm
from recommender.ranking import Context
from tests.recommender.worlds import N_ITEMS, WIDE, random_model

K = 8


def _context(rec: Recommender, pairs: Interactions, catalogue: Catalogue) -> Context:
    n_items = len(catalogue.product)
    return Context.build(pairs, rec.embeddings, lists.recent_buyers(pairs, n_items, rec.popularity_days))


def _discover_by_brute_force(
    rec: Recommender, pairs: Interactions, catalogue: Catalogue, context: Context, u: int
) -> tuple[list[int], Floats, list[int]]:
    """Member u's discover list the straightforward way: score every product never bought and still
    sold, build its ranker features, sort all of them."""
    bought = set(pairs.item[pairs.user == u].tolist())
    n_items = len(catalogue.product)
    candidates = np.array([i for i in range(n_items) if i not in bought and catalogue.active[i]])
    emb = rec.embeddings
    raw = np.array(
        [emb.user_vectors[u] @ emb.item_vectors[i] + emb.item_bias[i] for i in candidates], dtype=np.float64
    )
    x = ranking.discover_features(np.full(len(candidates), u), candidates, context, raw)
    prob = ranking.sigmoid(rec.discover.logit(x))
    best = np.argsort(-prob, kind="stable")[:K]
    per_unit = rec.discover.coef / rec.discover.scale
    similar = per_unit[0] * x[best, 0] >= per_unit[1] * x[best, 1]
    reasons = np.where(similar, lists.SIMILAR_MEMBERS, lists.POPULAR_NOW)
    return candidates[best].tolist(), prob[best], reasons.tolist()


def _assert_discover_is_exact(
    rec: Recommender, pairs: Interactions, catalogue: Catalogue, threads: int
) -> None:
    context = _context(rec, pairs, catalogue)
    users = np.arange(pairs.n_users)
    items, scores, reasons = lists.discover(
        rec, pairs, catalogue, context, K, users, chunk=7, threads=threads
    )
    for u in users:
        expected_items, expected_scores, expected_reasons = _discover_by_brute_force(
            rec, pairs, catalogue, context, u
        )
        assert items[u].tolist() == expected_items
        np.testing.assert_allclose(scores[u], expected_scores, rtol=1e-4)
        assert reasons[u].tolist() == expected_reasons


@pytest.mark.parametrize(("threads", "n_items"), [(1, N_ITEMS), (2, N_ITEMS), (1, WIDE), (2, WIDE)])
def test_discover_equals_brute_force(threads: int, n_items: int) -> None:
    """The fast path (one matrix product over the products still sold, top-K by threshold, the
    probability from the product) against scoring every pair, building its features and sorting."""
    rec, pairs, catalogue = random_model(n_items=n_items)
    _assert_discover_is_exact(rec, pairs, catalogue, threads)


def test_discover_equals_brute_force_on_a_trained_model() -> None:
    """The same on LightFM's own representations (biases and embeddings through the features)."""
    rec, pairs, catalogue = random_model(n_items=WIDE)
    emb = model.fit(
        dataset.interaction_matrix(pairs, WIDE),
        user_features=sp.identity(pairs.n_users, format="csr"),
        item_features=sp.identity(WIDE, format="csr"),
        hyper=model.Hyper(components=8, epochs=3),
    )
    _assert_discover_is_exact(dataclasses.replace(rec, embeddings=emb), pairs, catalogue, threads=2)


def test_discover_skips_products_no_longer_sold_even_when_they_would_win() -> None:
    rec, pairs, catalogue = random_model(n_items=WIDE)
    stopped = np.flatnonzero(~catalogue.active)
    rec.embeddings.item_bias[stopped] = 1e3  # the best product there is, for everyone, but not sold
    items, _, _ = lists.discover(
        rec, pairs, catalogue, _context(rec, pairs, catalogue), K, np.arange(pairs.n_users)
    )
    assert not set(stopped.tolist()) & set(items.ravel().tolist())
    assert (items >= 0).all()


def test_stream_blocks_equal_one_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 10 members, buy-again and mixed in parts of 3, discover in chunks of 4, on two
    threads: the same lists as one computation of everyone."""
    rec, pairs, catalogue = random_model(n_items=WIDE)
    whole = lists.compute(rec, pairs, catalogue, k=K, threads=2)
    monkeypatch.setattr(lists, "PART", 3)
    blocks = list(lists.stream(rec, pairs, catalogue, k=K, block=10, chunk=4, threads=2))
    assert [len(b.members) for b in blocks] == [10, 10, 10, pairs.n_users - 30]
    for name in (
        "members",
        "again_items",
        "again_scores",
        "again_reasons",
        "discover_items",
        "discover_scores",
        "discover_reasons",
        "mixed_source",
        "mixed_position",
    ):
        joined = np.concatenate([getattr(b, name) for b in blocks])
        np.testing.assert_array_equal(joined, getattr(whole, name))


def test_buy_again_equals_brute_force() -> None:
    rec, pairs, catalogue = random_model()
    context = _context(rec, pairs, catalogue)
    items, scores, reasons = lists.buy_again(rec, pairs, catalogue, context, K)
    # The straightforward way: every pair's rhythm, features and probability at once, then per member.
    r = rhythm(pairs, catalogue)
    model_score = ranking.pair_scores(rec.embeddings, pairs.user, pairs.item)
    prob = ranking.sigmoid(rec.again.logit(ranking.again_features(pairs, r, context, model_score)))
    allowed = catalogue.active[pairs.item] & ~lists.durable_recent(pairs, catalogue)
    ratio = r.due_ratio(pairs)
    due = (ratio >= 0.75) & (ratio <= 2.0) & (r.confidence >= 0.3)
    assert due.any()
    for u in range(pairs.n_users):
        own = np.flatnonzero((pairs.user == u) & allowed)
        best = own[np.argsort(-prob[own], kind="stable")][:K]
        expected = pairs.item[best].tolist() + [-1] * (K - len(best))
        assert items[u].tolist() == expected
        np.testing.assert_allclose(scores[u][: len(best)], prob[best], rtol=1e-5)
        expected_reasons = np.where(due[best], lists.DUE_AGAIN, lists.BOUGHT_BEFORE)
        assert reasons[u][: len(best)].tolist() == expected_reasons.tolist()


def test_mixed_interleaves_by_score_and_keeps_each_lists_order() -> None:
    rec, pairs, catalogue = random_model()
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
    rec, pairs, catalogue = random_model()
    top = lists.compute(rec, pairs, catalogue, k=K)
    inactive = set(np.flatnonzero(~catalogue.active).tolist())
    for matrix in (top.again_items, top.discover_items, top.mixed_items()):
        assert not inactive & set(matrix.ravel().tolist())


def test_a_durable_product_bought_recently_is_not_offered_again() -> None:
    _, _, catalogue = random_model()
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_breaks_ties_by_column_on_either_path(dtype: type) -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, size=(20, 1024)).astype(dtype)  # heavy ties
    scores[0, :] = -np.inf
    scores[1, :] = 5
    items, values = top_k(scores, 20)
    for row in range(20):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        expected = finite[np.argsort(-scores[row][finite], kind="stable")][:20].tolist()
        assert items[row].tolist() == expected + [-1] * (20 - len(expected))
        np.testing.assert_array_equal(values[row][: len(expected)], scores[row][expected])


def test_mix_takes_the_order_a_stable_sort_of_both_lists_gives() -> None:
    rng = np.random.default_rng(9)
    again = -np.sort(-rng.integers(0, 5, (40, 12)).astype(np.float32), axis=1) / 4  # ties within and across
    found = -np.sort(-rng.integers(0, 5, (40, 12)).astype(np.float32), axis=1) / 4
    again[::3, 7:] = -np.inf
    found[::4, 9:] = -np.inf
    source, position = mixed.mix(again, found, 12)
    both = np.concatenate([again, found], axis=1)
    order = np.argsort(-both, axis=1, kind="stable")[:, :12]
    picked = np.take_along_axis(both, order, axis=1)
    np.testing.assert_array_equal(source, np.where(np.isfinite(picked), order >= 12, -1))
    np.testing.assert_array_equal(position, order % 12)


def test_mix_of_lists_shorter_than_k_leaves_the_rest_empty() -> None:
    again = np.array([[0.9, 0.2], [-np.inf, -np.inf]], dtype=np.float32)
    found = np.array([[0.5], [0.4]], dtype=np.float32)
    source, position = mixed.mix(again, found, 4)
    assert source.tolist() == [[0, 1, 0, -1], [1, -1, -1, -1]]
    assert position[0, :3].tolist() == [0, 0, 1]
    assert position[1, 0] == 0
