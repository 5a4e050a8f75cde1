"""From a window of the prediction log to drift signals.

Input signals (length, rare word pieces, embeddings) need the window's texts and
the champion's encoder; prediction signals (label mix, confidence) use what the
gateway logged; the harm signals use feedback (accuracy) and calibrated
confidence (estimated accuracy). What a verdict makes of them is
:mod:`drift.policy`'s.
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
    estimated_accuracy_drift,
    label_drift,
    mmd_permutation_test,
    text_length_drift,
    unknown_token_drift,
)
from drift.features import Features
from drift.reference import BASELINE, Reference

EMBEDDING_SIGNAL = "embedding_mmd"


def detect(
    policy: DriftConfig,
    reference: Reference,
    rows: Sequence[Mapping[str, Any]],
    window: Features | None,
    golden_confidences: np.ndarray | None,
) -> tuple[list[Signal], list[str]]:
    """Every signal the window and the reference support, and, in words, each one left out and why.

    Input signals need texts (absent when the log is redacted). Against a training
    reference the label mix is the window's own (it was reweighted to it) and the
    confidences are in-sample, so those two tests need a live baseline; the
    confidence-based estimate of accuracy is then held to the champion's
    confidence on the golden set, which it never trained on.
    """
    signals: list[Signal] = []
    skipped: list[str] = []
    live = reference.kind == BASELINE
    if window is not None and len(window.lengths):
        signals.append(text_length_drift(reference.lengths, window.lengths, policy.alpha))
        rare_count = policy.rare_token_count
        win_rare = [sum(reference.token_counts[t] <= rare_count for t in ids) for ids in window.token_ids]
        win_total = [len(ids) for ids in window.token_ids]
        held = reference.held
        ref_rare, ref_total = reference.rare_per_row[held], reference.tokens_per_row[held]
        signals.append(unknown_token_drift(ref_rare, ref_total, win_rare, win_total, policy.alpha))
        generator = np.random.default_rng(policy.seed)
        ref_sample = _sample(reference.embeddings, policy.embedding_sample, generator)
        win_sample = _sample(window.embeddings, policy.embedding_sample, generator)
        signals.append(
            mmd_permutation_test(ref_sample, win_sample, policy.alpha, policy.permutations, policy.seed)
        )
    else:
        skipped.append("input signals: the window kept no texts (redacted log)")
    confidences = [row["confidence"] for row in rows]
    margin = policy.accuracy_margin
    if live:
        window_labels = Counter(row["label"] for row in rows)
        signals.append(
            label_drift(reference.label_counts, dict(window_labels), policy.alpha, policy.psi_threshold)
        )
        signals.append(confidence_drift(reference.confidences, confidences, policy.alpha))
        signals.append(estimated_accuracy_drift(confidences, reference.confidences, policy.alpha, margin))
    else:
        skipped.append("label mix and confidence: judged against a live baseline only")
        if golden_confidences is not None and len(golden_confidences):
            signals.append(estimated_accuracy_drift(confidences, golden_confidences, policy.alpha, margin))
        else:
            skipped.append("estimated accuracy: no golden-set confidences to hold the window to")
    judged = [row for row in rows if row.get("true_label")]
    if reference.accuracy is not None and len(judged) >= policy.min_feedback:
        correct = sum(row["label"] == row["true_label"] for row in judged)
        signals.append(
            accuracy_drift(reference.accuracy, correct, len(judged), policy.alpha, policy.accuracy_margin)
        )
    else:
        skipped.append(f"accuracy: {len(judged)} feedback labels in the window, {policy.min_feedback} needed")
    return signals, skipped


def live_accuracy(rows: Sequence[Mapping[str, Any]]) -> float | None:
    judged = [row for row in rows if row.get("true_label")]
    return sum(row["label"] == row["true_label"] for row in judged) / len(judged) if judged else None


def _sample(matrix: np.ndarray, size: int, generator: np.random.Generator) -> np.ndarray:
    if len(matrix) <= size:
        return matrix
    return matrix[generator.choice(len(matrix), size, replace=False)]
