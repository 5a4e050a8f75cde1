"""Detectors on synthetic shifts with known answers: false alarms without a shift, detection with one."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from drift.detectors import (
    accuracy_drift,
    confidence_drift,
    label_drift,
    mmd_permutation_test,
    text_length_drift,
    unknown_token_drift,
)

ALPHA = 0.05
TRIALS = 40


def _false_alarm_rate(alarm) -> float:
    return float(np.mean([alarm(np.random.default_rng(seed), shift=False) for seed in range(TRIALS)]))


def _power(alarm) -> float:
    return float(np.mean([alarm(np.random.default_rng(seed + 1000), shift=True) for seed in range(TRIALS)]))


def _embedding_alarm(rng: np.random.Generator, shift: bool) -> bool:
    reference = rng.normal(size=(120, 16))
    window = rng.normal(size=(120, 16))
    if shift:
        window[:, :4] += 0.6  # a topic moving four directions of the embedding space
    return mmd_permutation_test(
        reference, window, ALPHA, permutations=100, seed=int(rng.integers(1e9))
    ).drifted


def _length_alarm(rng: np.random.Generator, shift: bool) -> bool:
    reference = rng.poisson(60, size=300)
    window = rng.poisson(75 if shift else 60, size=300)
    return text_length_drift(reference, window, ALPHA).drifted


def _confidence_alarm(rng: np.random.Generator, shift: bool) -> bool:
    reference = rng.beta(8, 2, size=300)
    window = rng.beta(5 if shift else 8, 2, size=300)
    return confidence_drift(reference, window, ALPHA).drifted


def _label_alarm(rng: np.random.Generator, shift: bool) -> bool:
    mix = [0.2] * 5
    shifted = [0.4, 0.1, 0.1, 0.1, 0.3] if shift else mix
    labels = list("abcde")
    reference = dict(zip(labels, rng.multinomial(1000, mix).tolist(), strict=True))
    window = dict(zip(labels, rng.multinomial(300, shifted).tolist(), strict=True))
    return label_drift(reference, window, ALPHA, psi_threshold=0.1).drifted


def _unknown_alarm(rng: np.random.Generator, shift: bool) -> bool:
    reference = rng.binomial(20_000, 0.01)
    window = rng.binomial(5_000, 0.02 if shift else 0.01)
    return unknown_token_drift(reference, 20_000, window, 5_000, ALPHA).drifted


def _accuracy_alarm(rng: np.random.Generator, shift: bool) -> bool:
    correct = rng.binomial(300, 0.80 if shift else 0.92)
    return accuracy_drift(0.92, correct, 300, ALPHA, margin=0.02).drifted


DETECTORS = {
    "embedding_mmd": _embedding_alarm,
    "text_length": _length_alarm,
    "confidence": _confidence_alarm,
    "label_distribution": _label_alarm,
    "unknown_tokens": _unknown_alarm,
    "accuracy": _accuracy_alarm,
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_false_alarm_rate_stays_near_alpha(name: str) -> None:
    # 40 trials at alpha 0.05: more than 6 alarms would be p < 0.05 evidence of miscalibration.
    assert _false_alarm_rate(DETECTORS[name]) <= 6 / TRIALS


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_shift_is_detected(name: str) -> None:
    assert _power(DETECTORS[name]) >= 0.9


def test_mmd_p_value_is_calibrated_by_permutation() -> None:
    rng = np.random.default_rng(0)
    same = mmd_permutation_test(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)), ALPHA, 200, seed=1)
    assert 0.0 < same.p_value <= 1.0 and same.p_value >= 1 / 201
    apart = mmd_permutation_test(rng.normal(size=(50, 4)), rng.normal(3, 1, size=(50, 4)), ALPHA, 200, seed=1)
    # No permutation beat the observed statistic: the tail beyond 1/201 comes from the normal fit.
    assert 0.0 < apart.p_value < 1e-9


def test_rare_token_share_is_measured_out_of_sample() -> None:
    """Texts from the reference's own distribution must not look 'rarer' than the reference."""
    from drift.reference import rare_token_reference

    def documents(rng: np.random.Generator, count: int) -> list[list[int]]:
        return [list(rng.zipf(1.3, size=80) % 20_000) for _ in range(count)]

    alarms = in_sample_alarms = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        reference, window = documents(rng, 300), documents(rng, 300)
        vocabulary, per_row = rare_token_reference(reference, rare_count=1)
        held = per_row >= 0
        rare = int(per_row[held].sum())
        total = sum(len(ids) for ids, kept in zip(reference, held, strict=True) if kept)
        window_tokens = [token for ids in window for token in ids]
        window_rare = sum(vocabulary[token] <= 1 for token in window_tokens)
        alarms += unknown_token_drift(rare, total, window_rare, len(window_tokens), ALPHA).drifted
        # The naive way: rarity and share from the same reference sample.
        full = Counter(token for ids in reference for token in ids)
        naive_rare = sum(count for count in full.values() if count <= 1)
        naive_window = sum(full[token] <= 1 for token in window_tokens)
        in_sample_alarms += unknown_token_drift(
            naive_rare, sum(full.values()), naive_window, len(window_tokens), ALPHA
        ).drifted
    assert alarms <= 3
    assert in_sample_alarms >= 15  # what the out-of-sample split fixes
