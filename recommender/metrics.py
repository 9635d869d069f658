"""Top-K selection and ranking metrics, vectorised over members."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

Scores = NDArray[np.float32] | NDArray[np.float64]


# Columns are dealt into BLOCK interleaved slabs: block j holds columns j, j + n_blocks, j + 2 n_blocks, ...
BLOCK = 16
_SIGN = np.uint32(0x80000000)


def descending_keys(values: NDArray[np.float32]) -> NDArray[np.uint32]:
    """uint32 keys that sort ascending in the floats' descending order (-0.0 just after 0.0)."""
    bits = values.view(np.uint32)
    keys: NDArray[np.uint32] = np.where(bits & _SIGN, bits, ~bits & ~_SIGN)
    return keys


def _blocked_top_k(scores: NDArray[np.float32], k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each row's k best, best first, ties by column, without partitioning whole rows.

    The maximum of each block is one vectorised pass over the BLOCK slabs. The k-th highest block
    maximum is a threshold no higher than the row's k-th highest value (k blocks each hold a value at
    least that high), and few values reach it: about k on data without heavy ties. One comparison pass
    and `flatnonzero` find them, and one sort of (row, value) keys ranks them all at once. Exact: rows
    with fewer than k finite values get a -inf threshold and keep every column."""
    n_rows, n_cols = scores.shape
    n_blocks = n_cols // BLOCK
    block_max = scores.reshape(n_rows, BLOCK, n_blocks).max(axis=1)
    threshold = np.partition(block_max, n_blocks - k, axis=1)[:, n_blocks - k]
    found = np.flatnonzero(scores >= threshold[:, None])
    row = found // n_cols
    values = scores.ravel()[found]
    order = np.argsort((row << 32) | descending_keys(values).astype(np.int64), kind="stable")
    # Sorted by row, every row holds at least k candidates: its first k are its top k.
    firsts = np.searchsorted(row[order], np.arange(n_rows))
    best = order[(firsts[:, None] + np.arange(k)).ravel()]
    return (found[best] - row[best] * n_cols).reshape(n_rows, k), values[best].reshape(n_rows, k)


def _partitioned_top_k(scores: Scores, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each row's k best, best first, by `argpartition` of whole rows: for what blocks do not fit."""
    n_rows, n_cols = scores.shape
    if k < n_cols:
        part = np.argpartition(scores, n_cols - k, axis=1)[:, n_cols - k :]
        part_scores = np.take_along_axis(scores, part, axis=1).astype(np.float32)
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
        part_scores = scores.astype(np.float32)
    order = np.argsort(np.negative(part_scores), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(
        part_scores, order, axis=1
    )


def top_k(scores: Scores, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The k best columns of each row, best first, with their scores. Columns scored -inf are never
    chosen: they come back as -1. Float32 rows of whole blocks take the blocked path."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff == 0:
        return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, dtype=np.float32)
    blocked = (
        scores.dtype == np.float32
        and scores.flags.c_contiguous
        and n_cols % BLOCK == 0
        and n_cols // BLOCK >= 4 * k_eff
    )
    items, values = _blocked_top_k(scores, k_eff) if blocked else _partitioned_top_k(scores, k_eff)  # type: ignore[arg-type]
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
