"""From a window of the prediction log to drift signals, and the rule that confirms drift.

Input signals (length, rare word pieces, embeddings) need the window's texts and
the champion's encoder; prediction signals (label mix, confidence) use what the
gateway logged; the accuracy signal uses feedback.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bertloop.core.config import DriftConfig
from drift.detectors import (
    Signal,
    accuracy_drift,
    confidence_drift,
    label_drift,
    mmd_permutation_test,
    text_length_drift,
    unknown_token_drift,
)
from drift.features import Features
from drift.reference import Reference

EMBEDDING_SIGNAL = "embedding_mmd"


def detect(
    policy: DriftConfig, reference: Reference, rows: Sequence[Mapping[str, Any]], window: Features | None
) -> list[Signal]:
    """Every signal the window supports; input signals need texts (absent when the log is redacted)."""
    signals: list[Signal] = []
    if window is not None and len(window.lengths):
        signals.append(text_length_drift(reference.lengths, window.lengths, policy.alpha))
        win_tokens = [token for ids in window.token_ids for token in ids]
        win_rare = sum(reference.token_counts[token] <= policy.rare_token_count for token in win_tokens)
        signals.append(
            unknown_token_drift(
                reference.rare_tokens, reference.total_tokens, win_rare, len(win_tokens), policy.alpha
            )
        )
        generator = np.random.default_rng(policy.seed)
        ref_sample = _sample(reference.embeddings, policy.embedding_sample, generator)
        win_sample = _sample(window.embeddings, policy.embedding_sample, generator)
        signals.append(
            mmd_permutation_test(ref_sample, win_sample, policy.alpha, policy.permutations, policy.seed)
        )
    window_labels = Counter(row["label"] for row in rows)
    signals.append(
        label_drift(reference.label_counts, dict(window_labels), policy.alpha, policy.psi_threshold)
    )
    signals.append(confidence_drift(reference.confidences, [row["confidence"] for row in rows], policy.alpha))
    judged = [row for row in rows if row.get("true_label")]
    if reference.accuracy is not None and len(judged) >= policy.min_feedback:
        correct = sum(row["label"] == row["true_label"] for row in judged)
        signals.append(
            accuracy_drift(reference.accuracy, correct, len(judged), policy.alpha, policy.accuracy_margin)
        )
    return signals


def confirmed(signals: Sequence[Signal], min_signals: int) -> bool:
    """Embedding drift alone confirms (it sees meaning); otherwise enough signals must agree."""
    fired = [signal for signal in signals if signal.drifted]
    return any(signal.name == EMBEDDING_SIGNAL for signal in fired) or len(fired) >= min_signals


def live_accuracy(rows: Sequence[Mapping[str, Any]]) -> float | None:
    judged = [row for row in rows if row.get("true_label")]
    return sum(row["label"] == row["true_label"] for row in judged) / len(judged) if judged else None


def _sample(matrix: np.ndarray, size: int, generator: np.random.Generator) -> np.ndarray:
    if len(matrix) <= size:
        return matrix
    return matrix[generator.choice(len(matrix), size, replace=False)]
