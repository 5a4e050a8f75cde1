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


def _texts_with_rare_pieces(rng: np.random.Generator, count: int, mean_share: float) -> tuple:
    """Texts whose rare-piece shares vary from text to text (a Beta around ``mean_share``), as real
    texts do: pieces of one text are not independent draws."""
    tokens = rng.integers(80, 500, count)
    shares = rng.beta(4 * mean_share / (1 - mean_share), 4, count)
    return rng.binomial(tokens, shares), tokens


def _unknown_alarm(rng: np.random.Generator, shift: bool) -> bool:
    reference = _texts_with_rare_pieces(rng, 200, 0.15)
    window = _texts_with_rare_pieces(rng, 100, 0.25 if shift else 0.15)
    return unknown_token_drift(*reference, *window, ALPHA).drifted


def test_rare_pieces_are_judged_text_by_text_not_piece_by_piece() -> None:
    """Steady windows of texts that differ from one another (BBC articles: one about a new company
    repeats its name): a pooled two-proportion test over their ~30,000 pieces alarms on most of
    them; the per-text test keeps to alpha."""
    from scipy.stats import norm

    per_text = pooled = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        (ref_rare, ref_tokens), (win_rare, win_tokens) = (
            _texts_with_rare_pieces(rng, 200, 0.15), _texts_with_rare_pieces(rng, 100, 0.15),
        )  # fmt: skip
        per_text += unknown_token_drift(ref_rare, ref_tokens, win_rare, win_tokens, ALPHA).drifted
        p_ref, p_win = ref_rare.sum() / ref_tokens.sum(), win_rare.sum() / win_tokens.sum()
        both = (ref_rare.sum() + win_rare.sum()) / (ref_tokens.sum() + win_tokens.sum())
        se = np.sqrt(both * (1 - both) * (1 / ref_tokens.sum() + 1 / win_tokens.sum()))
        pooled += norm.sf((p_win - p_ref) / se) < ALPHA
    assert per_text <= 6 and pooled >= 12


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
        rare = per_row[held]
        total = [len(ids) for ids, kept in zip(reference, held, strict=True) if kept]
        window_rare = [sum(vocabulary[token] <= 1 for token in ids) for ids in window]
        window_total = [len(ids) for ids in window]
        alarms += unknown_token_drift(rare, total, window_rare, window_total, ALPHA).drifted
        # The naive way: rarity and share from the same reference sample.
        full = Counter(token for ids in reference for token in ids)
        naive_rare = [sum(full[token] <= 1 for token in ids) for ids in reference]
        naive_window = [sum(full[token] <= 1 for token in ids) for ids in window]
        in_sample_alarms += unknown_token_drift(
            naive_rare, [len(ids) for ids in reference], naive_window, window_total, ALPHA
        ).drifted
    assert alarms <= 3
    assert in_sample_alarms >= 15  # what the out-of-sample split fixes
