"""LightFM, and nothing else of it: the only module that imports `lightfm`.

Training returns plain numpy arrays (`recommender.embeddings.Embeddings`): member and product
representations with their biases, already multiplied through the feature matrices. That is all
serving and evaluation need, and it is what the artifact stores, so no LightFM object is ever pickled,
and nothing the API process imports pulls LightFM in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from recommender.embeddings import Embeddings

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Hyper:
    """LightFM's knobs. Defaults are what evaluation chose (see EVALUATION.md for what was tried)."""

    loss: str = "warp"
    components: int = 48
    epochs: int = 30
    learning_rate: float = 0.05
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    max_sampled: int = 30

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def fit(
    interactions: sp.coo_matrix,
    *,
    user_features: sp.csr_matrix,
    item_features: sp.csr_matrix,
    sample_weight: sp.coo_matrix | None = None,
    hyper: Hyper | None = None,
    threads: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
) -> Embeddings:
    """Train LightFM epoch by epoch (reporting `progress(epoch, epochs)`) and return the embeddings."""
    hyper = hyper or Hyper()
    model = LightFM(
        loss=hyper.loss,
        no_components=hyper.components,
        learning_rate=hyper.learning_rate,
        item_alpha=hyper.item_alpha,
        user_alpha=hyper.user_alpha,
        max_sampled=hyper.max_sampled,
        random_state=np.random.RandomState(seed),
    )
    user_features = user_features.astype(np.float32).tocsr()
    item_features = item_features.astype(np.float32).tocsr()
    for epoch in range(hyper.epochs):
        model.fit_partial(
            interactions,
            user_features=user_features,
            item_features=item_features,
            sample_weight=sample_weight,
            epochs=1,
            num_threads=threads,
        )
        if progress is not None:
            progress(epoch + 1, hyper.epochs)
    _, user_vectors = model.get_user_representations(user_features)
    item_bias, item_vectors = model.get_item_representations(item_features)
    return Embeddings(
        user_vectors=np.ascontiguousarray(user_vectors, dtype=np.float32),
        item_vectors=np.ascontiguousarray(item_vectors, dtype=np.float32),
        item_bias=np.ascontiguousarray(item_bias, dtype=np.float32),
    )
