"""The bars Patron's lists are measured against: the buy-again rule and implicit ALS (popularity is
`lists.recent_buyers` and a bincount, see `evaluate`).

All return dense (members x products) score matrices for the evaluated members; higher is better,
-inf means "never recommend". Evaluation-sized only (thousands of members).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.dataset import Interactions

Dense = NDArray[np.float64]


def buy_again_rule(interactions: Interactions, n_items: int, users: NDArray[np.int64]) -> Dense:
    """The member's own products by how many orders held them, ties broken by how recently."""
    span = max(interactions.until - float(interactions.first_at.min(initial=interactions.until)), 1.0)
    score = interactions.orders + (interactions.last_at - interactions.until + span) / (span * 2)
    return _dense(interactions, score, n_items, users)


def _dense(interactions: Interactions, score: Dense, n_items: int, users: NDArray[np.int64]) -> Dense:
    position = np.full(interactions.n_users, -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    out = np.full((len(users), n_items), -np.inf)
    row = position[interactions.user]
    keep = row >= 0
    out[row[keep], interactions.item[keep]] = score[keep]
    return out


def als(
    interactions: Interactions,
    n_items: int,
    *,
    factors: int = 64,
    iterations: int = 15,
    regularization: float = 0.1,
    alpha: float = 10.0,
    cg_steps: int = 3,
    seed: int = 0,
) -> tuple[Dense, Dense]:
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008), confidence 1 + alpha*log1p(orders).

    Each half-step solves every member's (or product's) least squares at once with a few conjugate
    gradient steps (as the `implicit` package does), all as matrix operations over the observed
    pairs; cheap enough that `implicit` need not be a dependency."""
    rng = np.random.default_rng(seed)
    confidence = alpha * np.log1p(interactions.orders)
    users = rng.normal(0, 0.01, (interactions.n_users, factors))
    items = rng.normal(0, 0.01, (n_items, factors))
    for _ in range(iterations):
        users = _cg_half(
            interactions.user, interactions.item, confidence, users, items, regularization, cg_steps
        )
        items = _cg_half(
            interactions.item, interactions.user, confidence, items, users, regularization, cg_steps
        )
    return users, items


def _cg_half(
    rows: NDArray[np.int64],
    cols: NDArray[np.int64],
    confidence: Dense,
    x: Dense,
    other: Dense,
    regularization: float,
    steps: int,
) -> Dense:
    """Approximately solve (Y^TY + Y^T(C_u - I)Y + λI) x_u = Y^TC_u p_u for every row u at once."""
    n = x.shape[0]
    gram = other.T @ other + regularization * np.eye(other.shape[1])
    factors = other[cols]

    def apply(v: Dense) -> Dense:
        inner = np.einsum("ij,ij->i", factors, v[rows]) * confidence
        return v @ gram + _scatter(rows, factors * inner[:, None], n)

    b = _scatter(rows, factors * (1.0 + confidence)[:, None], n)
    r = b - apply(x)
    p = r.copy()
    rs_old = np.einsum("ij,ij->i", r, r)
    for _ in range(steps):
        ap = apply(p)
        denom = np.einsum("ij,ij->i", p, ap)
        step = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > 0)
        x = x + step[:, None] * p
        r = r - step[:, None] * ap
        rs_new = np.einsum("ij,ij->i", r, r)
        p = r + np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > 0)[:, None] * p
        rs_old = rs_new
    return x


def _scatter(rows: NDArray[np.int64], values: Dense, n: int) -> Dense:
    """Sum `values` rows into `n` output rows by `rows` (a sparse product, faster than add.at)."""
    picker = sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n, len(rows)))
    out: Dense = picker @ values
    return out
