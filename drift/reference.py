"""The reference a live window is compared with, chosen so that it looks like traffic.

Two kinds, in order of preference:

- **baseline**: the champion's first ``drift.baseline_size`` answers after it was
  promoted (the promotion ledger says when), once its live accuracy, where
  feedback exists, is not significantly below its golden-set accuracy. It is
  live traffic, so a window of the same traffic is judged against its own kind;
  each champion gets its own, so a drift-triggered retrain starts afresh and
  never alarms on "drift back".
- **training**: until a baseline exists, a seeded sample of the champion's
  training texts, reweighted (stratified subsampling, no repeats) to the class
  mix the champion predicts on the window. Training batches are often class
  balanced while traffic is not; reweighting removes that difference, and the
  label-mix and confidence tests, which such a reference cannot judge fairly
  (the mix is the window's own, the confidences are in-sample), are left out.

The training reference is computed once per champion version and cached; a
baseline once per promotion.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bertloop.core.config import DriftConfig
from drift.features import Features, featurize, from_log
from modeling.runner import ClassifierRunner

REFERENCE_FORMAT = "r4"  # bump when the cached reference's contents change
BASELINE, TRAINING = "baseline", "training"

# Champion version -> the texts it was trained on (resolved by the caller through lineage).
TrainingTexts = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Reference:
    version: str
    kind: str  # BASELINE or TRAINING
    description: str  # what it is, in words, recorded with each check
    lengths: np.ndarray
    token_counts: Counter[int]  # the vocabulary rare word pieces are judged against
    rare_per_row: np.ndarray  # rare word pieces per row; -1 on rows that built the vocabulary
    tokens_per_row: np.ndarray
    embeddings: np.ndarray
    labels: np.ndarray  # the champion's answer per row
    confidences: np.ndarray
    accuracy: float | None  # the accuracy to hold live feedback to

    @property
    def held(self) -> np.ndarray:
        return self.rare_per_row >= 0

    @property
    def label_counts(self) -> dict[str, int]:
        return dict(Counter(self.labels.tolist()))

    def rows(self, indices: np.ndarray) -> Reference:
        return replace(
            self, lengths=self.lengths[indices], rare_per_row=self.rare_per_row[indices],
            tokens_per_row=self.tokens_per_row[indices], embeddings=self.embeddings[indices],
            labels=self.labels[indices], confidences=self.confidences[indices],
        )  # fmt: skip


def load_or_build(
    version: str,
    runner: ClassifierRunner,
    training_texts: TrainingTexts,
    golden_accuracy: float | None,
    settings: DriftConfig,
    cache_dir: Path,
) -> Reference:
    """The cached training reference of ``version``, or one built from a seeded sample of its texts."""
    cache = cache_dir / f"reference-v{version}-{REFERENCE_FORMAT}.npz"
    description = f"training texts of v{version}"
    if cache.is_file():
        return _load(cache, version, TRAINING, description, golden_accuracy)
    texts = pd.Series(list(training_texts(version)), dtype=object)
    sample = texts.sample(min(len(texts), settings.reference_size), random_state=settings.seed).tolist()
    reference = build(version, featurize(runner, sample), settings.rare_token_count, golden_accuracy)
    _save(reference, cache)
    return reference


def build(version: str, features: Features, rare_count: int, golden_accuracy: float | None) -> Reference:
    """A training reference: the vocabulary from half its rows, rare word pieces counted on the other.

    Measured in sample, the reference would look less rare than any unseen text
    (every word piece of its own is known), and every live window would alarm.
    """
    vocabulary, rare = rare_token_reference(features.token_ids, rare_count)
    return Reference(
        version, TRAINING, f"training texts of v{version}", features.lengths, vocabulary, rare,
        np.array([len(ids) for ids in features.token_ids]), features.embeddings,
        np.array(features.labels, dtype=object), features.confidences, golden_accuracy,
    )  # fmt: skip


def rare_token_reference(
    token_ids: Sequence[Sequence[int]], rare_count: int
) -> tuple[Counter[int], np.ndarray]:
    """The vocabulary from the even rows, and rare word pieces per odd row (-1 on the even rows)."""
    vocabulary = Counter(token for ids in token_ids[::2] for token in ids)
    rare = [-1 if row % 2 == 0 else _rare(ids, vocabulary, rare_count) for row, ids in enumerate(token_ids)]
    return vocabulary, np.array(rare, dtype=int)


def baseline(
    training: Reference,
    features: Features,
    rare_count: int,
    accuracy: float | None,
    description: str,
) -> Reference:
    """A live baseline: every row judged against the training reference's vocabulary, as windows are."""
    return Reference(
        training.version, BASELINE, description, features.lengths, training.token_counts,
        np.array([_rare(ids, training.token_counts, rare_count) for ids in features.token_ids]),
        np.array([len(ids) for ids in features.token_ids]), features.embeddings,
        np.array(features.labels, dtype=object), features.confidences, accuracy,
    )  # fmt: skip


def load_or_build_baseline(
    training: Reference,
    runner: ClassifierRunner,
    rows: Sequence[Mapping[str, object]],
    accuracy: float | None,
    settings: DriftConfig,
    cache_dir: Path,
    promoted_at: float,
) -> Reference:
    """The champion's baseline from its first answers after ``promoted_at``, cached per promotion."""
    description = (
        f"live baseline of v{training.version}: its first {len(rows)} answers after promotion at "
        f"{pd.Timestamp(promoted_at, unit='s'):%Y-%m-%d %H:%M:%S} UTC"
    )
    cache = cache_dir / f"baseline-v{training.version}-{promoted_at:.3f}-{len(rows)}-{REFERENCE_FORMAT}.npz"
    if cache.is_file():
        return _load(cache, training.version, BASELINE, description, accuracy)
    made = baseline(training, from_log(runner, rows), settings.rare_token_count, accuracy, description)
    _save(made, cache)
    return made


def reweighted(reference: Reference, window_labels: Mapping[str, int]) -> Reference | None:
    """The largest stratified subsample of ``reference`` whose class mix is the window's; None when the
    window predicts no class the reference has."""
    present = {label: count for label, count in window_labels.items() if count > 0}
    available = Counter(reference.labels.tolist())
    shared = {label: count for label, count in present.items() if available.get(label, 0) > 0}
    if not shared:
        return None
    total = sum(shared.values())
    shares = {label: count / total for label, count in shared.items()}
    size = min(available[label] / share for label, share in shares.items())
    generator = np.random.default_rng(0)
    chosen: list[int] = []
    for label, share in sorted(shares.items()):
        members = np.flatnonzero(reference.labels == label)
        take = max(1, round(size * share))
        chosen.extend(generator.choice(members, min(take, len(members)), replace=False).tolist())
    mix = ", ".join(f"{label} {share:.0%}" for label, share in sorted(shares.items()))
    subset = reference.rows(np.sort(np.array(chosen)))
    return replace(
        subset, description=f"{reference.description}, reweighted to the window's predicted mix ({mix})"
    )


def _rare(ids: Sequence[int], vocabulary: Counter[int], rare_count: int) -> int:
    return sum(vocabulary[token] <= rare_count for token in ids)


def _save(reference: Reference, cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    meta = {"token_counts": {str(k): v for k, v in reference.token_counts.items()}}
    np.savez(cache, lengths=reference.lengths, embeddings=reference.embeddings,
             confidences=reference.confidences, rare=reference.rare_per_row, tokens=reference.tokens_per_row,
             labels=reference.labels.astype(str), meta=json.dumps(meta))  # fmt: skip


def _load(cache: Path, version: str, kind: str, description: str, accuracy: float | None) -> Reference:
    stored = np.load(cache, allow_pickle=False)
    meta = json.loads(str(stored["meta"]))
    return Reference(
        version, kind, description, stored["lengths"],
        Counter({int(k): v for k, v in meta["token_counts"].items()}), stored["rare"], stored["tokens"],
        stored["embeddings"], stored["labels"].astype(object), stored["confidences"], accuracy,
    )  # fmt: skip
