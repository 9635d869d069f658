"""Top-K selection and ranking metrics, vectorised over members."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

Scores = NDArray[np.float32] | NDArray[np.float64]


# Interleaved blocks of this many columns: block j holds columns j, j + n_blocks, j + 2 n_blocks, ...
BLOCK = 16


def _blocked_top_k(scores: Scores, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]] | None:
    """Each row's k best (unsorted) from candidate blocks, or None when blocks would not pay.

    Columns are dealt into interleaved blocks (block j holds columns j, j + n_blocks, ...), so a
    block's maximum is one vectorised max over BLOCK contiguous slabs. The k blocks with the highest
    maxima hold at least k values >= the k-th highest maximum, so they hold every value of the row's
    top k: exact, and only k x BLOCK values are left to partition instead of the whole row."""
    n_rows, n_cols = scores.shape
    n_blocks = n_cols // BLOCK
    if n_blocks < 4 * k or n_cols % BLOCK:
        return None
    slabs = scores.reshape(n_rows, BLOCK, n_blocks)
    best = np.argpartition(slabs.max(axis=1), n_blocks - k, axis=1)[:, n_blocks - k :]
    # A gather through flat indexes: take_along_axis on the 3-d view costs twice as much.
    offsets = np.arange(n_rows)[:, None, None] * n_cols + np.arange(BLOCK)[None, :, None] * n_blocks
    pool = scores.ravel().take((offsets + best[:, None, :]).ravel()).reshape(n_rows, BLOCK * k)
    width = BLOCK * k
    part = np.argpartition(pool, width - k, axis=1)[:, width - k :]
    values = np.take_along_axis(pool, part, axis=1)
    # pool position p is slab p // k, block best[p % k]: column block + slab * n_blocks.
    columns = np.take_along_axis(best, part % k, axis=1) + (part // k) * n_blocks
    return columns.astype(np.int64), values.astype(np.float32)


def top_k(scores: Scores, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The k best columns of each row, best first, with their scores (candidate blocks, argpartition,
    then a sort of only the k survivors). Columns scored -inf are never chosen: they come back as -1."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff == 0:
        return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, dtype=np.float32)
    blocked = None if not scores.flags.c_contiguous else _blocked_top_k(scores, k_eff)
    if blocked is not None:
        part, part_scores = blocked
    elif k_eff < n_cols:
        part = np.argpartition(scores, n_cols - k_eff, axis=1)[:, n_cols - k_eff :]
        part_scores = np.take_along_axis(scores, part, axis=1).astype(np.float32)
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
        part_scores = scores.astype(np.float32)
    order = np.argsort(np.negative(part_scores), axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1).astype(np.int64)
    values = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    items[np.isneginf(values)] = -1
    if k_eff < k:
        items = np.pad(items, ((0, 0), (0, k - k_eff)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return items, values


@dataclass(frozen=True)
class Scored:
    """Mean precision@k, recall@k and NDCG@k over members with at least one target, and catalogue
    coverage (share of products recommended to anyone)."""

    precision: float
    recall: float
    ndcg: float
    coverage: float
    members: int


def score(recommended: NDArray[np.int64], targets: sp.csr_matrix, n_items: int) -> Scored:
    """Score a (members x k) matrix of product indexes (-1 = empty slot) against targets."""
    targets = targets.tocsr()
    n_targets = np.diff(targets.indptr)
    rows = np.flatnonzero(n_targets > 0)
    if len(rows) == 0:
        return Scored(0.0, 0.0, 0.0, 0.0, 0)
    recs = recommended[rows]
    k = recs.shape[1]
    valid = recs >= 0
    lookup = targets[np.repeat(rows, k), np.where(valid, recs, 0).ravel()]
    hits = (np.asarray(lookup).reshape(len(rows), k) > 0) & valid
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(n_targets[rows], k) - 1]
    covered = np.unique(recommended[recommended >= 0])
    return Scored(
        precision=float(hits.sum(axis=1).mean() / k),
        recall=float((hits.sum(axis=1) / n_targets[rows]).mean()),
        ndcg=float((dcg / ideal).mean()),
        coverage=len(covered) / n_items if n_items else 0.0,
        members=len(rows),
    )
