"""The statistics under the gate, against values worked out by hand or by scipy."""

import numpy as np
import pytest
from scipy.stats import binomtest

from evaluation import paired


def test_wilson_interval_matches_the_closed_form() -> None:
    none_right = paired.wilson(0, 10, 0.95)
    z2 = 1.959963984540054**2
    assert none_right.lower == 0.0
    assert none_right.upper == pytest.approx(z2 / (10 + z2))
    half = paired.wilson(50, 100, 0.95)
    assert half.estimate == 0.5 and half.lower == pytest.approx(1 - half.upper)
    assert half.describe() == "0.500 (0.404–0.596, n=100)"


def test_mcnemar_counts_only_the_discordant_items() -> None:
    candidate = [True] * 10 + [True] * 50 + [False] * 40
    champion = [False] * 10 + [True] * 50 + [False] * 40
    assert paired.mcnemar_exact(candidate, champion) == pytest.approx(2 * 0.5**10)
    assert paired.mcnemar_exact(candidate, candidate) == 1.0
    mixed_candidate = [True] * 7 + [False] * 3
    mixed_champion = [False] * 7 + [True] * 3
    assert paired.mcnemar_exact(mixed_candidate, mixed_champion) == pytest.approx(binomtest(7, 10).pvalue)


def test_bootstrap_point_estimates_match_sklearn() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    generator = np.random.default_rng(1)
    truth = generator.integers(0, 4, 300)
    predicted = np.where(generator.random(300) < 0.7, truth, generator.integers(0, 4, 300))
    (resampled,) = paired.bootstrap(truth, [predicted], 4, 200, seed=0)
    assert resampled.point_accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert resampled.point_macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert resampled.point_class_f1 == pytest.approx(f1_score(truth, predicted, average=None))
    assert resampled.accuracy.shape == (200,) and resampled.class_f1.shape == (200, 4)
    # The resampled accuracies spread as a binomial proportion does.
    expected = np.sqrt(resampled.point_accuracy * (1 - resampled.point_accuracy) / 300)
    assert np.std(resampled.accuracy) == pytest.approx(expected, rel=0.25)


def test_both_models_see_the_same_resamples() -> None:
    truth = np.arange(50) % 2
    (first, second) = paired.bootstrap(truth, [truth, truth], 2, 100, seed=3)
    assert np.array_equal(first.macro_f1, second.macro_f1)  # identical models: difference exactly 0


def test_required_size_scales_with_the_spread() -> None:
    differences = np.random.default_rng(0).normal(0, 0.02, 5000)
    needed = paired.required_size(200, differences, margin=0.02, confidence=0.95, power=0.8)
    assert needed == pytest.approx(200 * (2.8016 * 0.02 / 0.02) ** 2, rel=0.05)
    assert paired.required_size(200, np.zeros(100), 0.02, 0.95, 0.8) == 200
    assert paired.required_size(200, differences, 0.0, 0.95, 0.8) is None
