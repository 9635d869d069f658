"""A small random model over a random history: for checking fast paths against brute force."""

from __future__ import annotations

import numpy as np

from recommender import dataset, ranking
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Interactions
from recommender.embeddings import Embeddings
from recommender.lists import Recommender
from recommender.ranking import Logistic

N_USERS, N_ITEMS = 37, 60
# Enough products still sold for discover's blocked top-K: 636 sold, 40 blocks of 16 (k = 8 needs 32).
WIDE = 700


def random_model(seed: int = 3, n_items: int = N_ITEMS) -> tuple[Recommender, Interactions, Catalogue]:
    """N_USERS members, `n_items` products (every eleventh no longer sold, every fifth consumable),
    400 purchases over 200 days, random embeddings and rankers."""
    rng = np.random.default_rng(seed)
    catalogue = Catalogue(
        product=np.array([f"p{i:03d}" for i in range(n_items)], dtype=np.str_),
        category=np.array([f"c{i % 4}" for i in range(n_items)], dtype=np.str_),
        brand=np.full(n_items, "", dtype=np.str_),
        price=rng.uniform(1, 50, n_items),
        tags=[() for _ in range(n_items)],
        consumable_days=np.where(np.arange(n_items) % 5 == 0, 30.0, np.nan),
        active=np.arange(n_items) % 11 != 0,
    )
    n_rows = 400
    purchases = dataset.Purchases(
        member=np.array([f"m{u:02d}" for u in rng.integers(0, N_USERS, n_rows)], dtype=np.str_),
        product=catalogue.product[rng.integers(0, n_items, n_rows)],
        at=rng.uniform(0, 200, n_rows) * SECONDS_PER_DAY,
        quantity=rng.integers(1, 4, n_rows).astype(float),
    )
    pairs = dataset.aggregate(purchases, catalogue, until=200 * SECONDS_PER_DAY, half_life_days=60)
    emb = Embeddings(
        user_vectors=rng.normal(size=(pairs.n_users, 5)).astype(np.float32),
        item_vectors=rng.normal(size=(n_items, 5)).astype(np.float32),
        item_bias=rng.normal(size=n_items).astype(np.float32),
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
