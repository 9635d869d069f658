"""Turning signals into one calibrated probability per member x product.

Two small logistic models, fitted per store on a validation split inside its own training window
(model fitted on purchases before `until - horizon`, labels = what was bought in the horizon):
- buy again: how often and how recently the member bought it, the need prediction (due ratio and its
  confidence), the LightFM score, the product's recent popularity, and how active the member is;
- discover: the LightFM score, the product's recent popularity, and how active the member is.
Each outputs P(bought within the horizon). Being probabilities of the same event, the two lists'
scores can be compared, which is what `mixed` interleaves by. Weights are learned per store, so a
grocery shop (rhythm matters) and a gift shop (recency matters) each get their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from recommender.dataset import SECONDS_PER_DAY, Floats, Interactions
from recommender.embeddings import Embeddings
from recommender.needs import Rhythm

AGAIN_FEATURES = (
    "log_orders",
    "log_days_since",
    "log_recency",
    "need_closeness",
    "need_overdue",
    "model_z",
    "log_popularity",
    "member_breadth",
    "member_idle",
)
DISCOVER_FEATURES = ("model_z", "log_popularity", "member_breadth", "member_idle")
PAIR_CHUNK = 1 << 12  # 4,096 pairs: gathered rows stay in cache (2^18 took 1.6x as long)
MOMENT_CHUNK = 1 << 13  # members per chunk of `score_moments` (3 MB of float64 vectors)


@dataclass(frozen=True)
class Logistic:
    """A logistic model on standardised features: p = sigmoid(intercept + sum coef*(x - mean)/scale)."""

    coef: Floats
    mean: Floats
    scale: Floats
    intercept: float

    def logit(self, x: Floats) -> Floats:
        out: Floats = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return out

    def as_array(self) -> Floats:
        return np.concatenate(([self.intercept], self.coef, self.mean, self.scale))

    @classmethod
    def from_array(cls, data: Floats) -> Logistic:
        n = (len(data) - 1) // 3
        return cls(
            coef=data[1 : n + 1],
            mean=data[n + 1 : 2 * n + 1],
            scale=data[2 * n + 1 :],
            intercept=float(data[0]),
        )


def fit_logistic(x: Floats, y: Floats, weight: Floats | None = None, *, l2: float = 1.0) -> Logistic:
    """Weighted, L2-regularised logistic regression by Newton's method (a handful of features)."""
    mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    scale = x.std(axis=0) if len(x) else np.ones(x.shape[1])
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.ones(len(x)) if weight is None else weight
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -30, 30)))
        gradient = z.T @ (w * (y - p)) - penalty * beta
        hessian = (z.T * (w * p * (1 - p))) @ z + np.diag(penalty) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.abs(step).max() < 1e-6:
            break
    return Logistic(coef=beta[1:], mean=mean, scale=scale, intercept=float(beta[0]))


def prior_rankers() -> tuple[Logistic, Logistic]:
    """Weights for a store too young to fit its own (no purchases before the validation split, or none
    after it): buy again by frequency, recency and need; discover by taste and popularity. Scores stay
    in (0, 1) but are not calibrated until the store has a history to fit on."""
    n_again, n_discover = len(AGAIN_FEATURES), len(DISCOVER_FEATURES)
    again = np.zeros(n_again)
    again[[0, 1, 2, 3]] = [1.0, -0.5, 0.5, 0.5]
    discover = np.zeros(n_discover)
    discover[[0, 1]] = [0.5, 0.5]
    return (
        Logistic(coef=again, mean=np.zeros(n_again), scale=np.ones(n_again), intercept=-2.0),
        Logistic(coef=discover, mean=np.zeros(n_discover), scale=np.ones(n_discover), intercept=-5.0),
    )


def sigmoid(x: Floats) -> Floats:
    out: Floats = 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))
    return out


@dataclass(frozen=True)
class Context:
    """What the features need beyond the pairs: member activity and product popularity."""

    member_breadth: Floats
    """log1p(distinct products the member bought), per member."""
    member_idle: Floats
    """log1p(days since the member's last purchase), per member."""
    popularity: Floats
    """log1p(distinct members who bought the product in the recent window), per product."""
    score_mean: Floats
    score_scale: Floats
    """Per member: mean and standard deviation of their LightFM scores over all products, so a score
    becomes a z-value comparable between members and between model versions."""

    @classmethod
    def build(cls, interactions: Interactions, embeddings: Embeddings, recent_buyers: Floats) -> Context:
        n = interactions.n_users
        breadth = np.bincount(interactions.user, minlength=n).astype(np.float64)
        last = np.full(n, -np.inf)
        np.maximum.at(last, interactions.user, interactions.last_at)
        idle = np.where(np.isfinite(last), (interactions.until - last) / SECONDS_PER_DAY, 365.0)
        mean, scale = score_moments(embeddings)
        return cls(
            member_breadth=np.log1p(breadth),
            member_idle=np.log1p(np.maximum(idle, 0.0)),
            popularity=np.log1p(recent_buyers),
            score_mean=mean,
            score_scale=scale,
        )


def score_moments(embeddings: Embeddings) -> tuple[Floats, Floats]:
    """Mean and standard deviation over products of each member's scores, in closed form
    (u*mean(V) + mean(b); u^Tsumu + 2u*cov(V, b) + var(b)), without the members x products matrix."""
    v = embeddings.item_vectors.astype(np.float64)
    b = embeddings.item_bias.astype(np.float64)
    v_mean, b_mean = v.mean(axis=0), b.mean()
    centred = v - v_mean
    covariance = centred.T @ centred / max(len(v), 1)
    cross = centred.T @ (b - b_mean) / max(len(v), 1)
    users = embeddings.user_vectors
    mean, variance = np.empty(len(users)), np.empty(len(users))
    # Members in chunks, so the float64 copies stay in cache rather than being fresh pages each time;
    # u (cov u + 2 cross) row by row with einsum (`(...).sum(axis=1)` sums a short last axis one row at
    # a time, 25x slower).
    for lo in range(0, len(users), MOMENT_CHUNK):
        u = users[lo : lo + MOMENT_CHUNK].astype(np.float64)
        spread = u @ covariance
        spread += 2 * cross
        variance[lo : lo + MOMENT_CHUNK] = np.einsum("ij,ij->i", spread, u)
        mean[lo : lo + MOMENT_CHUNK] = u @ v_mean
    return mean + b_mean, np.sqrt(np.maximum(variance + b.var(), 1e-12))


def again_features(
    interactions: Interactions, rhythm: Rhythm, context: Context, model_score: Floats
) -> Floats:
    """Features of every interaction pair as a buy-again candidate (pairs x AGAIN_FEATURES)."""
    user, item = interactions.user, interactions.item
    since = np.maximum((interactions.until - interactions.last_at) / SECONDS_PER_DAY, 0.0)
    ratio = rhythm.due_ratio(interactions)
    log_ratio = np.clip(np.log(np.where(ratio > 0, ratio, 1.0)), -3.0, 3.0)
    known = np.isfinite(ratio)
    closeness = np.where(known, rhythm.confidence * np.exp(-2.0 * log_ratio**2), 0.0)
    overdue = np.where(known, rhythm.confidence * log_ratio, 0.0)
    z = (model_score - context.score_mean[user]) / context.score_scale[user]
    return np.column_stack(
        [
            np.log1p(interactions.orders),
            np.log1p(since),
            np.log1p(interactions.recency),
            closeness,
            overdue,
            z,
            context.popularity[item],
            context.member_breadth[user],
            context.member_idle[user],
        ]
    )


def discover_features(
    users: NDArray[np.int64], items: NDArray[np.int64], context: Context, model_score: Floats
) -> Floats:
    """Features of (member, product) candidates the member never bought (rows x DISCOVER_FEATURES)."""
    z = (model_score - context.score_mean[users]) / context.score_scale[users]
    return np.column_stack(
        [z, context.popularity[items], context.member_breadth[users], context.member_idle[users]]
    )


def pair_scores(embeddings: Embeddings, users: NDArray[np.int64], items: NDArray[np.int64]) -> Floats:
    """LightFM scores of given (member, product) pairs, without the full matrix; in chunks, so that
    millions of pairs never gather millions of embedding rows at once."""
    out: Floats = np.empty(len(users), dtype=np.float64)
    for lo in range(0, len(users), PAIR_CHUNK):
        u, i = users[lo : lo + PAIR_CHUNK], items[lo : lo + PAIR_CHUNK]
        dots = np.einsum("ij,ij->i", embeddings.user_vectors[u], embeddings.item_vectors[i])
        out[lo : lo + PAIR_CHUNK] = dots + embeddings.item_bias[i]
    return out
