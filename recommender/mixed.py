"""Mixed: buy-again and discover interleaved by their calibrated probabilities (probabilities of the
same event, so comparable)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from recommender.dataset import Ints


def mix(again: NDArray[np.float32], found: NDArray[np.float32], k: int) -> tuple[NDArray[np.int8], Ints]:
    """Interleave two lists, each sorted by score best first, by score: which list each mixed slot
    takes (-1: none left), and from where. Ties go to buy-again, then to the earlier slot: the order a
    stable sort of both lists by score gives, found as a merge, one slot at a time for every member
    at once (a sort per member took eight times as long)."""
    again, found = _at_least(again, k), _at_least(found, k)  # so that a merge never runs off a row
    n, width = again.shape
    flat_again, flat_found = again.ravel(), found.ravel()
    start_again = np.arange(n, dtype=np.int64) * width
    start_found = np.arange(n, dtype=np.int64) * found.shape[1]
    at_again, at_found = start_again.copy(), start_found.copy()
    took_again = np.empty((k, n), dtype=np.bool_)
    again_before = np.empty((k, n), dtype=np.int64)  # how many buy-again entries precede each slot
    best = np.empty((k, n), dtype=np.float32)
    for slot in range(k):
        head_again, head_found = flat_again.take(at_again), flat_found.take(at_found)
        np.greater_equal(head_again, head_found, out=took_again[slot])
        np.maximum(head_again, head_found, out=best[slot])
        np.subtract(at_again, start_again, out=again_before[slot])
        at_again += took_again[slot]
        at_found += ~took_again[slot]
    source = np.where(took_again, 0, 1).astype(np.int8)
    source[np.isneginf(best)] = -1
    position = np.where(took_again, again_before, np.arange(k)[:, None] - again_before)
    return np.ascontiguousarray(source.T), np.ascontiguousarray(position.T)


def _at_least(scores: NDArray[np.float32], k: int) -> NDArray[np.float32]:
    """Scores padded with empty (-inf) slots to k columns."""
    if scores.shape[1] >= k:
        return scores
    padded: NDArray[np.float32] = np.pad(scores, ((0, 0), (0, k - scores.shape[1])), constant_values=-np.inf)
    return padded
