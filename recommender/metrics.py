"""Top-K selection and ranking metrics, vectorised over members."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

Scores = NDArray[np.float32] | NDArray[np.float64]


# Blocks for the threshold: columns are dealt into BLOCK slabs, block j holding columns j,
# j + n_blocks, j + 2 n_blocks, ... so that every block's maximum is one vectorised pass.
BLOCK = 16
_SIGN = np.uint32(0x80000000)


def descending_keys(values: NDArray[np.float32]) -> NDArray[np.uint32]:
    """uint32 keys that sort ascending in the floats' descending order (-0.0 counts as 0.0)."""
    bits = (values + np.float32(0.0)).view(np.uint32)
    keys: NDArray[np.uint32] = np.where(bits & _SIGN, bits, ~bits & ~_SIGN)
    return keys


def _values_of_keys(keys: NDArray[np.int64]) -> NDArray[np.float32]:
    """The floats `descending_keys` made these (uint32-valued) keys from."""
    bits = keys.astype(np.uint32)
    values: NDArray[np.float32] = np.where(bits & _SIGN, bits, ~bits & ~_SIGN).view(np.float32)
    return values


def _ranked(
    row: NDArray[np.int64], column: NDArray[np.int64], values: Scores, n_rows: int, n_cols: int, k: int
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each row's k best of the given (row, column, value) candidates, best first, ties by column;
    every row must have at least k. For float32, one sort of int64 keys packing (row, value order,
    column), unique so that no stable sort is needed: a tenth of lexsort's time."""
    column_bits = max(int(n_cols - 1).bit_length(), 1)
    if values.dtype == np.float32 and n_rows <= 1 << (31 - column_bits):
        shift = 32 + column_bits
        keys = row << shift
        keys |= descending_keys(values.astype(np.float32, copy=False)).astype(np.int64) << column_bits
        keys |= column
        keys.sort()
        firsts = np.searchsorted(keys, np.arange(n_rows, dtype=np.int64) << shift)
        best = keys[firsts[:, None] + np.arange(k)]
        return best & ((1 << column_bits) - 1), _values_of_keys(best >> column_bits)
    order = np.lexsort((column, -values, row))
    firsts = np.searchsorted(row[order], np.arange(n_rows))
    best = order[firsts[:, None] + np.arange(k)]
    return column[best], values[best].astype(np.float32)


def _blocked(scores: Scores, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The threshold per row is the k-th highest block maximum (k blocks each hold a value at least
    that high, so no top value is missed); only the blocks whose maximum reaches it are read again,
    and of their values those reaching it (about k) are ranked."""
    n_rows, n_cols = scores.shape
    n_blocks = n_cols // BLOCK
    slabs = scores.reshape(n_rows, BLOCK, n_blocks)
    block_max = slabs.max(axis=1)
    threshold = np.partition(block_max, n_blocks - k, axis=1)[:, n_blocks - k]
    row, block = np.divmod(np.flatnonzero(np.greater_equal(block_max, threshold[:, None])), n_blocks)
    candidates = slabs.transpose(0, 2, 1)[row, block]  # (candidate block, slab): one gather
    hit = np.flatnonzero(np.greater_equal(candidates, threshold[row][:, None]))
    which, slab = np.divmod(hit, BLOCK)
    return _ranked(row[which], block[which] + slab * n_blocks, candidates.ravel()[hit], n_rows, n_cols, k)


def _above(scores: Scores, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The threshold per row is its k-th highest value: the values reaching it are ranked."""
    n_rows, n_cols = scores.shape
    threshold = np.partition(scores, n_cols - k, axis=1)[:, n_cols - k]
    row, column = np.divmod(np.flatnonzero(np.greater_equal(scores, threshold[:, None])), n_cols)
    return _ranked(row, column, scores[row, column], n_rows, n_cols, k)


def top_k(scores: Scores, k: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The k best columns of each row, best first (ties by column), with their scores. Columns
    scored -inf are never chosen: they come back as -1. Rows are never sorted whole: a threshold
    no higher than the row's k-th highest value leaves about k candidates to rank (`_blocked` where
    the row has blocks enough, else `_above`)."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff == 0:
        return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, dtype=np.float32)
    n_blocks = n_cols // BLOCK
    if n_cols % BLOCK == 0 and n_blocks >= 4 * k_eff:
        items, values = _blocked(scores, k_eff)
    else:
        items, values = _above(scores, k_eff)
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
