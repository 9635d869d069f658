"""Trained members and products as plain arrays: what serving, ranking and the artifact use."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Embeddings:
    """Members and products as vectors: score(u, i) = user_vectors[u] * item_vectors[i] + item_bias[i]
    (the member's own bias does not change their ranking, so it is not kept)."""

    user_vectors: NDArray[np.float32]
    item_vectors: NDArray[np.float32]
    item_bias: NDArray[np.float32]

    def scores(self, users: NDArray[np.int64]) -> NDArray[np.float32]:
        """Scores of every product for the given members, as one matrix product."""
        out: NDArray[np.float32] = self.user_vectors[users] @ self.item_vectors.T
        out += self.item_bias
        return out

    def to_bytes(self) -> bytes:
        """An `.npz` of plain arrays (no pickled objects), for the artifact row."""
        buffer = io.BytesIO()
        np.savez(
            buffer, user_vectors=self.user_vectors, item_vectors=self.item_vectors, item_bias=self.item_bias
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Embeddings:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls(
                user_vectors=arrays["user_vectors"],
                item_vectors=arrays["item_vectors"],
                item_bias=arrays["item_bias"],
            )
