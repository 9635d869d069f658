"""Evaluation on a time split: train before a cut-off, test on the weeks after it.

Members scored are those with history before the cut who bought anything in the test weeks (a member
with no history gets the cold-start list, the same for every method). Two targets: "any" (every product
bought in the test weeks; for `mixed` and `buy_again`) and "new" (products the member had never
bought; for `discover`). On "new" every baseline also leaves out what the member already bought, so
it competes on the same ground as `discover`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np
import scipy.sparse as sp

from recommender import baselines, dataset, lists, model, repository
from recommender.dataset import SECONDS_PER_DAY, Catalogue, Interactions, MemberFacts, Purchases
from recommender.metrics import Scored, score, top_k
from recommender.repository import Connection
from recommender.train import Report, TrainConfig, TrainingData, from_database, from_purchases, train

BASELINES = ("popular_all_time", "popular_28_days", "buy_again_rule", "lightfm_vanilla", "als")
PATRON = ("patron_mixed", "patron_buy_again", "patron_discover")


@dataclass(frozen=True)
class Row:
    """One method's scores on one target."""

    method: str
    target: str
    precision: float
    recall: float
    ndcg: float
    coverage: float
    members: int


@dataclass(frozen=True)
class WindowResult:
    cut: str
    test_until: str
    train_pairs: int
    rows: list[Row]


def targets(
    history: Interactions, test: Interactions, n_items: int
) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]:
    pos = np.minimum(np.searchsorted(history.members, test.members), max(history.n_users - 1, 0))
    known = history.members[pos] == test.members
    user = np.where(known, pos, -1)[test.user]
    keep = user >= 0
    shape = (history.n_users, n_items)
    any_ = sp.csr_matrix((np.ones(keep.sum()), (user[keep], test.item[keep])), shape=shape)
    bought = sp.csr_matrix((np.ones(len(history.user)), (history.user, history.item)), shape=shape)
    any_.data[:] = 1.0
    new = (any_ - any_.multiply(bought)).tocsr()
    new.eliminate_zeros()
    users = np.flatnonzero(np.diff(any_.indptr) > 0)
    return users, any_[users], new[users], bought[users]


def _row(method: str, target: str, scored: Scored) -> Row:
    return Row(
        method,
        target,
        round(scored.precision, 4),
        round(scored.recall, 4),
        round(scored.ndcg, 4),
        round(scored.coverage, 4),
        scored.members,
    )


def evaluate_window(
    data: TrainingData,
    test: Interactions,
    *,
    k: int,
    config: TrainConfig,
    threads: int = 1,
    seed: int = 0,
    report: Report | None = None,
) -> list[Row]:
    """Every method on both targets for one cut-off (`data` ends at the cut, `test` follows it)."""
    catalogue, history = data.catalogue, data.history
    n_items = len(catalogue.product)
    users, any_, new, bought = targets(history, test, n_items)
    rows: list[Row] = []

    def both(method: str, scores: np.ndarray) -> None:
        rows.append(_row(method, "any", score(top_k(scores, k)[0], any_, n_items)))
        fresh = np.where(bought.toarray() > 0, -np.inf, scores)
        rows.append(_row(method, "new", score(top_k(fresh, k)[0], new, n_items)))

    ones = np.ones((len(users), 1))
    all_time = np.bincount(history.item, minlength=n_items).astype(np.float64)
    both("popular_all_time", ones * all_time)
    recent = lists.recent_buyers(history, n_items, 28.0)
    both("popular_28_days", ones * (recent + all_time / (all_time.max() + 1)))
    both("buy_again_rule", baselines.buy_again_rule(history, n_items, users))
    vanilla = model.fit(
        dataset.interaction_matrix(history, n_items),
        user_features=sp.identity(history.n_users, format="csr"),
        item_features=sp.identity(n_items, format="csr"),
        hyper=config.hyper,
        threads=threads,
        seed=seed,
        progress=None if report is None else (lambda d, t: report("vanilla LightFM", d, t)),
    )
    both("lightfm_vanilla", vanilla.scores(users))
    user_factors, item_factors = baselines.als(history, n_items, seed=seed)
    both("als", user_factors[users] @ item_factors.T)

    rec = train(data, config, threads=threads, seed=seed, report=report)
    top = lists.compute(rec, history, catalogue, k=k, users=users)
    rows.append(_row("patron_mixed", "any", score(top.mixed_items(), any_, n_items)))
    rows.append(_row("patron_buy_again", "any", score(top.again_items, any_, n_items)))
    rows.append(_row("patron_discover", "new", score(top.discover_items, new, n_items)))
    return rows


def evaluate_purchases(
    purchases: Purchases,
    catalogue: Catalogue,
    facts: MemberFacts | None,
    *,
    cuts: list[datetime],
    weeks: int,
    k: int,
    config: TrainConfig,
    threads: int = 1,
    seed: int = 0,
    report: Report | None = None,
) -> list[WindowResult]:
    """Evaluate on purchase arrays (the CSV path), one window per cut-off."""
    results = []
    for cut in cuts:
        t0 = cut.timestamp()
        t1 = t0 + weeks * 7 * SECONDS_PER_DAY
        data = from_purchases(purchases, catalogue, facts, until=t0, config=config)
        test = dataset.aggregate(purchases.between(t0, t1), catalogue, until=t1, half_life_days=1.0)
        rows = evaluate_window(data, test, k=k, config=config, threads=threads, seed=seed, report=report)
        results.append(
            WindowResult(
                cut.date().isoformat(),
                (cut + timedelta(weeks=weeks)).date().isoformat(),
                len(data.history.user),
                rows,
            )
        )
    return results


async def evaluate_store(
    conn: Connection,
    *,
    store_id: str,
    cuts: list[datetime],
    weeks: int,
    k: int,
    config: TrainConfig,
    threads: int = 1,
    seed: int = 0,
    report: Report | None = None,
) -> list[WindowResult]:
    """Evaluate on a store's orders in PostgreSQL, one window per cut-off."""
    results = []
    for cut in cuts:
        end = cut + timedelta(weeks=weeks)
        data = await from_database(conn, store_id=store_id, until=cut, config=config)
        test = await repository.interactions(
            conn, store_id=store_id, catalogue=data.catalogue, since=cut, until=end, half_life_days=1.0
        )
        rows = evaluate_window(data, test, k=k, config=config, threads=threads, seed=seed, report=report)
        results.append(
            WindowResult(cut.date().isoformat(), end.date().isoformat(), len(data.history.user), rows)
        )
    return results


def as_json(results: list[WindowResult]) -> list[dict[str, object]]:
    return [asdict(result) for result in results]


def table(results: list[WindowResult], k: int) -> str:
    """A Markdown table per window: methods down, the two targets across."""
    out = []
    for result in results:
        out.append(
            f"\n### cut {result.cut}, test until {result.test_until} "
            f"({result.train_pairs:,} training pairs)\n"
        )
        out.append(
            f"| method | any P@{k} | any R@{k} | any NDCG@{k} | any cov | new P@{k} | new R@{k} "
            f"| new NDCG@{k} | new cov |"
        )
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        by: dict[str, dict[str, Row]] = {}
        for row in result.rows:
            by.setdefault(row.method, {})[row.target] = row
        for method in BASELINES + PATRON:
            cells = []
            for target in ("any", "new"):
                found = by.get(method, {}).get(target)
                cells += (
                    ["—"] * 4
                    if found is None
                    else [
                        f"{found.precision:.4f}",
                        f"{found.recall:.4f}",
                        f"{found.ndcg:.4f}",
                        f"{found.coverage:.3f}",
                    ]
                )
            out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)
