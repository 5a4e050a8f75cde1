"""What the drift signals read of a set of texts: lengths, word pieces, embeddings and predictions.

Embeddings come from the prediction log where the gateway stored them (it
computes them anyway to answer) and from the champion's encoder for rows logged
without one; both run on the serving plan, so they are the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertloop.core.stores.predictions import EMBEDDING_DTYPE, decode_embedding
from modeling.runner import ClassifierRunner


@dataclass(frozen=True)
class Features:
    lengths: np.ndarray
    token_ids: list[list[int]]
    embeddings: np.ndarray
    labels: list[str]
    confidences: np.ndarray
    logged_embeddings: int = 0  # rows whose embedding came from the log, not a second encoder pass


def featurize(runner: ClassifierRunner, texts: Sequence[str], batch_size: int = 32) -> Features:
    """Word-piece lengths, token ids, mean-pooled sentence embeddings and predictions."""
    token_ids = runner.token_ids(texts)
    scored = runner.score(texts, batch_size=batch_size, embeddings=True)
    assert scored.embeddings is not None
    return Features(
        lengths=np.array([len(ids) for ids in token_ids]),
        token_ids=token_ids,
        embeddings=as_logged(scored.embeddings),
        labels=scored.labels,
        confidences=np.array(scored.confidences),
    )


def as_logged(embeddings: np.ndarray) -> np.ndarray:
    """Embeddings rounded as the log stores them (float16), so references and windows, logged or
    computed here, sit on the same grid of values."""
    return embeddings.astype(EMBEDDING_DTYPE).astype(np.float32)


def from_log(runner: ClassifierRunner, rows: Sequence[Mapping[str, Any]], batch_size: int = 32) -> Features:
    """Features of logged predictions (rows with a text): the logged embedding, label and confidence
    where the row has them, the encoder's for rows logged before embeddings were stored."""
    texts = [str(row["text"]) for row in rows]
    token_ids = runner.token_ids(texts)
    logged = [row.get("embedding") for row in rows]
    missing = [texts[index] for index, stored in enumerate(logged) if not stored]
    computed = iter(_embed(runner, missing, batch_size))
    vectors = [decode_embedding(stored) if stored else next(computed) for stored in logged]
    return Features(
        lengths=np.array([len(ids) for ids in token_ids]),
        token_ids=token_ids,
        embeddings=np.vstack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32),
        labels=[str(row["label"]) for row in rows],
        confidences=np.array([float(row["confidence"]) for row in rows]),
        logged_embeddings=len(rows) - len(missing),
    )


def _embed(runner: ClassifierRunner, texts: Sequence[str], batch_size: int) -> np.ndarray:
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    scored = runner.score(texts, batch_size, embeddings=True)
    assert scored.embeddings is not None
    return as_logged(scored.embeddings)
