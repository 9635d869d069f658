"""Training a store's recommender: LightFM embeddings plus the two calibrated rankers.

Two LightFM fits: one on the history before `until - horizon`, scored against what members bought in
the horizon to fit the rankers' weights (so the weights are learned without peeking), and one on the
whole history, which is what serves. Both sources (PostgreSQL, or arrays from a CSV) meet here as
`TrainingData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from recommender import dataset, model, ranking, repository
from recommender.dataset import (
    SECONDS_PER_DAY,
    Catalogue,
    FeatureWeights,
    Interactions,
    Ints,
    MemberFacts,
    Purchases,
)
from recommender.embeddings import Embeddings
from recommender.lists import Recommender, recent_buyers
from recommender.model import Hyper
from recommender.needs import rhythm
from recommender.ranking import Context, Logistic
from recommender.repository import Connection

Report = Callable[[str, int, int], None]
"""Progress: (stage, done, total)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything training decides by; defaults are what evaluation chose (EVALUATION.md)."""

    half_life_days: float = 90.0
    """Sample weights halve every this many days: last season's taste counts more than last year's."""
    horizon_days: float = 28.0
    """What the rankers predict: a purchase within this many days."""
    popularity_days: float = 28.0
    history_days: float = 730.0
    """How far back training reads."""
    quantity_power: float = 0.0
    negatives: int = 200
    """Never-bought products sampled per member to fit the discover ranker."""
    hyper: Hyper = field(default_factory=Hyper)
    weights: FeatureWeights = field(default_factory=FeatureWeights)


@dataclass(frozen=True)
class TrainingData:
    """A store's history as of `until`: all of it, and the validation split inside it."""

    catalogue: Catalogue
    facts: MemberFacts | None
    history: Interactions
    validation: Interactions
    labels: Interactions


def from_purchases(
    purchases: Purchases,
    catalogue: Catalogue,
    facts: MemberFacts | None,
    *,
    until: float,
    config: TrainConfig,
) -> TrainingData:
    """Training data from purchase arrays (the CSV path)."""
    since = until - config.history_days * SECONDS_PER_DAY
    split = until - config.horizon_days * SECONDS_PER_DAY
    window = purchases.between(since, until)

    def pairs(p: Purchases, end: float) -> Interactions:
        return dataset.aggregate(p, catalogue, until=end, half_life_days=config.half_life_days)

    return TrainingData(
        catalogue=catalogue,
        facts=facts,
        history=pairs(window, until),
        validation=pairs(window.before(split), split),
        labels=pairs(purchases.between(split, until), until),
    )


async def from_database(
    conn: Connection, *, store_id: str, until: datetime, config: TrainConfig
) -> TrainingData:
    """Training data from the store's orders in PostgreSQL (set-based SQL, see the repository)."""
    catalogue = await repository.catalogue(conn, store_id=store_id)
    facts = await repository.member_facts(conn, store_id=store_id)
    since = until - timedelta(days=config.history_days)
    split = until - timedelta(days=config.horizon_days)

    async def pairs(start: datetime, end: datetime) -> Interactions:
        return await repository.interactions(
            conn,
            store_id=store_id,
            catalogue=catalogue,
            since=start,
            until=end,
            half_life_days=config.half_life_days,
        )

    return TrainingData(
        catalogue=catalogue,
        facts=facts,
        history=await pairs(since, until),
        validation=await pairs(since, split),
        labels=await pairs(split, until),
    )


def fit_embeddings(
    pairs: Interactions,
    catalogue: Catalogue,
    facts: MemberFacts | None,
    config: TrainConfig,
    *,
    threads: int = 1,
    seed: int = 0,
    progress: model.Progress | None = None,
) -> Embeddings:
    """The hybrid LightFM: time-decayed sample weights, item and member features."""
    n_items = len(catalogue.product)
    item_features, _ = dataset.item_features(catalogue, config.weights)
    user_features, _ = dataset.user_features(pairs.members, facts, config.weights)
    weights = dataset.sample_weights(pairs, quantity_power=config.quantity_power)
    return model.fit(
        dataset.interaction_matrix(pairs, n_items),
        user_features=user_features,
        item_features=item_features,
        sample_weight=dataset.interaction_matrix(pairs, n_items, weights),
        hyper=config.hyper,
        threads=threads,
        seed=seed,
        progress=progress,
    )


def _label_keys(pairs: Interactions, labels: Interactions, n_items: int) -> Ints:
    """Keys (user x n_items + item, users indexed like `pairs`) of labelled pairs of known members."""
    pos = np.searchsorted(pairs.members, labels.members)
    pos = np.minimum(pos, max(pairs.n_users - 1, 0))
    known = pairs.members[pos] == labels.members if pairs.n_users else np.zeros(0, dtype=bool)
    user = np.where(known, pos, -1)[labels.user]
    keep = user >= 0
    keys: Ints = user[keep] * n_items + labels.item[keep]
    return keys


MAX_FIT_ROWS = 2_000_000


def fit_rankers(
    data: TrainingData, embeddings: Embeddings, config: TrainConfig, *, seed: int = 0
) -> tuple[Logistic, Logistic]:
    """Fit the buy-again and discover rankers on the validation split (see `ranking`)."""
    pairs, catalogue = data.validation, data.catalogue
    n_items = len(catalogue.product)
    context = Context.build(pairs, embeddings, recent_buyers(pairs, n_items, config.popularity_days))
    positive = np.unique(_label_keys(pairs, data.labels, n_items))
    history_keys = pairs.user * n_items + pairs.item
    rng = np.random.default_rng(seed)
    # A few million rows fit a handful of weights as well as all of them would, in bounded memory.
    fit_rows = rng.permutation(len(history_keys))[:MAX_FIT_ROWS]
    sub = pairs.subset(fit_rows)
    scores = ranking.pair_scores(embeddings, sub.user, sub.item)
    x_again = ranking.again_features(sub, rhythm(sub, catalogue), context, scores)
    again = ranking.fit_logistic(x_again, np.isin(history_keys[fit_rows], positive).astype(np.float64))

    new = positive[~np.isin(positive, history_keys)]
    n = pairs.n_users
    per_member = int(min(config.negatives, max(5, MAX_FIT_ROWS // max(n, 1))))
    sampled = rng.integers(0, n_items, size=(n, per_member))
    sampled_keys = (np.arange(n)[:, None] * n_items + sampled).ravel()
    keep = ~np.isin(sampled_keys, history_keys) & ~np.isin(sampled_keys, new)
    sampled_keys = sampled_keys[keep]
    neg_user = sampled_keys // n_items
    kept = np.bincount(neg_user, minlength=n).astype(np.float64)
    bought = np.bincount(pairs.user, minlength=n) + np.bincount(new // n_items, minlength=n)
    # Each sampled negative stands for all the member's never-bought products it was drawn from, so
    # the fitted probabilities stay calibrated (comparable with buy-again's).
    stands_for = np.divide(n_items - bought, kept, out=np.zeros(n), where=kept > 0)
    users = np.concatenate([new // n_items, neg_user])
    items = np.concatenate([new % n_items, sampled_keys % n_items])
    weight = np.concatenate([np.ones(len(new)), stands_for[neg_user]])
    label = np.concatenate([np.ones(len(new)), np.zeros(len(sampled_keys))])
    x_discover = ranking.discover_features(
        users, items, context, ranking.pair_scores(embeddings, users, items)
    )
    discover = ranking.fit_logistic(x_discover, label, weight)
    return again, discover


def train(
    data: TrainingData,
    config: TrainConfig,
    *,
    threads: int = 1,
    seed: int = 0,
    report: Report | None = None,
    on_validation: Callable[[Recommender], None] | None = None,
) -> Recommender:
    """Validation fit -> rankers -> final fit on the whole history. `on_validation` receives the
    validation-split model (same rankers, validation embeddings) to measure it on its horizon."""

    def stage(name: str) -> model.Progress | None:
        return None if report is None else (lambda done, total: report(name, done, total))

    def assemble(
        pairs: Interactions, embeddings: Embeddings, again: Logistic, discover: Logistic
    ) -> Recommender:
        return Recommender(
            members=pairs.members,
            products=data.catalogue.product,
            embeddings=embeddings,
            again=again,
            discover=discover,
            half_life_days=config.half_life_days,
            horizon_days=config.horizon_days,
            popularity_days=config.popularity_days,
        )

    if data.validation.n_users == 0 or data.labels.n_users == 0:
        again, discover = ranking.prior_rankers()  # a store too young for a validation split
    else:
        validation_embeddings = fit_embeddings(
            data.validation,
            data.catalogue,
            data.facts,
            config,
            threads=threads,
            seed=seed,
            progress=stage("validation model"),
        )
        again, discover = fit_rankers(data, validation_embeddings, config, seed=seed)
        if on_validation is not None:
            on_validation(assemble(data.validation, validation_embeddings, again, discover))
    embeddings = fit_embeddings(
        data.history,
        data.catalogue,
        data.facts,
        config,
        threads=threads,
        seed=seed,
        progress=stage("final model"),
    )
    return assemble(data.history, embeddings, again, discover)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def describe(rec: Recommender) -> dict[str, dict[str, float]]:
    """The rankers' weights by feature name (per standard deviation), for the artifact and people."""
    return {
        "again": dict(zip(ranking.AGAIN_FEATURES, rec.again.coef.round(3).tolist(), strict=True)),
        "discover": dict(zip(ranking.DISCOVER_FEATURES, rec.discover.coef.round(3).tolist(), strict=True)),
    }
