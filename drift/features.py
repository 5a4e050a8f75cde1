"""What the drift signals read of a set of texts: lengths, word pieces, embeddings and predictions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modeling.runner import ClassifierRunner


@dataclass(frozen=True)
class Features:
    lengths: np.ndarray
    token_ids: list[list[int]]
    embeddings: np.ndarray
    labels: list[str]
    confidences: np.ndarray


def featurize(runner: ClassifierRunner, texts: Sequence[str], batch_size: int = 32) -> Features:
    """Word-piece lengths, token ids, mean-pooled sentence embeddings and predictions."""
    token_ids = runner.token_ids(texts)
    scored = runner.score(texts, batch_size=batch_size, embeddings=True)
    assert scored.embeddings is not None
    return Features(
        lengths=np.array([len(ids) for ids in token_ids]),
        token_ids=token_ids,
        embeddings=scored.embeddings,
        labels=scored.labels,
        confidences=np.array(scored.confidences),
    )
