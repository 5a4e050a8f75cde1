"""The reference a live window is compared with: the champion's training texts and its predictions on them.

The texts come from a source the caller hands in (the pipeline resolves the
champion's training snapshot through its lineage). The reference is computed
once per champion version and cached next to the drift reports.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bertloop.core.config import DriftConfig
from drift.features import Features, featurize
from modeling.runner import ClassifierRunner

REFERENCE_FORMAT = "r2"  # bump when the cached reference's contents change

# Champion version -> the texts it was trained on (resolved by the caller through lineage).
TrainingTexts = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Reference:
    version: str
    lengths: np.ndarray
    token_counts: Counter[int]  # vocabulary counts from one half of the reference
    rare_tokens: int  # rare word pieces in the other half: an out-of-sample share
    total_tokens: int
    embeddings: np.ndarray
    label_counts: dict[str, int]
    confidences: np.ndarray
    accuracy: float | None  # the champion's golden-set accuracy


def load_or_build(
    version: str,
    runner: ClassifierRunner,
    training_texts: TrainingTexts,
    golden_accuracy: float | None,
    settings: DriftConfig,
    cache_dir: Path,
) -> Reference:
    """The cached reference of ``version``, or one built from a seeded sample of its training texts."""
    cache = cache_dir / f"reference-v{version}-{REFERENCE_FORMAT}.npz"
    if cache.is_file():
        return _load(cache, version, golden_accuracy)
    texts = pd.Series(list(training_texts(version)), dtype=object)
    sample = texts.sample(min(len(texts), settings.reference_size), random_state=settings.seed).tolist()
    reference = build(version, featurize(runner, sample), settings.rare_token_count, golden_accuracy)
    _save(reference, cache)
    return reference


def build(version: str, features: Features, rare_count: int, golden_accuracy: float | None) -> Reference:
    vocabulary, rare_tokens, total_tokens = rare_token_reference(features.token_ids, rare_count)
    return Reference(
        version, features.lengths, vocabulary, rare_tokens, total_tokens, features.embeddings,
        dict(Counter(features.labels)), features.confidences, golden_accuracy,
    )  # fmt: skip


def rare_token_reference(
    token_ids: Sequence[Sequence[int]], rare_count: int
) -> tuple[Counter[int], int, int]:
    """Vocabulary from half the reference; the rare share counted on the other half.

    Measured in sample, the reference would look less rare than any unseen text
    (every word piece of its own is known), and every live window would alarm.
    """
    vocabulary = Counter(token for ids in token_ids[::2] for token in ids)
    held = [token for ids in token_ids[1::2] for token in ids]
    return vocabulary, sum(vocabulary[token] <= rare_count for token in held), len(held)


def _save(reference: Reference, cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "token_counts": {str(k): v for k, v in reference.token_counts.items()},
        "label_counts": reference.label_counts,
        "rare_tokens": reference.rare_tokens,
        "total_tokens": reference.total_tokens,
    }
    np.savez(cache, lengths=reference.lengths, embeddings=reference.embeddings,
             confidences=reference.confidences, meta=json.dumps(meta))  # fmt: skip


def _load(cache: Path, version: str, golden_accuracy: float | None) -> Reference:
    stored = np.load(cache, allow_pickle=False)
    meta = json.loads(str(stored["meta"]))
    return Reference(
        version, stored["lengths"], Counter({int(k): v for k, v in meta["token_counts"].items()}),
        meta["rare_tokens"], meta["total_tokens"], stored["embeddings"], meta["label_counts"],
        stored["confidences"], golden_accuracy,
    )  # fmt: skip
