"""Issue 16, item 3: false confirmations under the null stay within ``drift.alpha`` at the defaults.

The bound is sample-size aware: with ``n`` simulated null windows and a true
rate of at most ``alpha``, the count of windows that fire exceeds the binomial
0.999 quantile of ``Binomial(n, alpha)`` less than once in a thousand runs.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.stats import binom, norm

from bertloop.core.config import DriftConfig
from drift import policy, reference, signals
from drift.detectors import Signal
from drift.features import Features

LABELS = ["a", "b", "c", "d"]
PRIOR = np.array([0.45, 0.25, 0.2, 0.1])
# Every signal a check against a live baseline can hold: the widest Holm family.
FAMILY = [
    "text_length", "unknown_tokens", "embedding_mmd", "label_distribution", "confidence",
    "estimated_accuracy", "accuracy",
]  # fmt: skip


def _bound(windows: int, alpha: float) -> float:
    return float(binom.ppf(0.999, windows, alpha))


def _null_p_values(rng: np.random.Generator, windows: int, correlation: float) -> np.ndarray:
    """Uniform p-values per signal, equicorrelated through a Gaussian copula."""
    shared = rng.normal(size=(windows, 1))
    own = rng.normal(size=(windows, len(FAMILY)))
    scores = np.sqrt(correlation) * shared + np.sqrt(1 - correlation) * own
    return norm.cdf(scores)


@pytest.mark.parametrize("correlation", [0.0, 0.7])
def test_holm_keeps_the_family_rate_at_the_default_alpha_whatever_the_dependence(
    correlation: float,
) -> None:
    alpha = DriftConfig().alpha
    windows = 20_000
    p_values = _null_p_values(np.random.default_rng(16), windows, correlation)
    fired = confirmed = uncorrected = 0
    for row in p_values:
        # drifted=True: every effect-size condition holds, so only the p-values decide.
        found = [Signal(name, 1.0, float(p), True, "") for name, p in zip(FAMILY, row, strict=True)]
        verdict = policy.decide(found, alpha, severe_mmd=0.05)
        fired += bool(verdict.fired)
        confirmed += verdict.confirmed
        uncorrected += bool((row < alpha).any())
    bound = _bound(windows, alpha)
    assert confirmed <= fired <= bound, (fired, confirmed, bound)
    if correlation == 0.0:
        # The bound has teeth: the same windows judged signal by signal at alpha would fail it.
        assert uncorrected > bound, (uncorrected, bound)


def test_the_default_permutations_resolve_the_smallest_holm_threshold() -> None:
    """The MMD p-value reads a fitted normal's tail only when no permutation reaches the observed
    statistic, where the permutation p-value is 1/(permutations+1). Below the smallest Holm threshold
    (alpha over the widest family) that extrapolation changes no verdict, so the MMD test keeps the
    size of an exact permutation test; with fewer permutations it would not."""
    settings = DriftConfig()
    assert 1 / (settings.permutations + 1) <= settings.alpha / len(FAMILY)


def _stream(rng: np.random.Generator, size: int) -> Features:
    """Steady traffic: class-dependent embeddings, word pieces and calibrated confidences."""
    classes = rng.choice(len(LABELS), size, p=PRIOR)
    embeddings = np.eye(len(LABELS), 10)[classes] * 2.0 + rng.normal(size=(size, 10))
    token_ids = [list(rng.integers(0, 300, size=int(rng.integers(8, 30)))) for _ in range(size)]
    return Features(
        lengths=np.array([len(ids) for ids in token_ids]),
        token_ids=token_ids,
        embeddings=embeddings,
        labels=[LABELS[c] for c in classes],
        confidences=rng.beta(9, 1, size),
    )


def _rows(features: Features, rng: np.random.Generator) -> list[dict[str, object]]:
    """Feedback on every answer, right as often as the (calibrated) confidence says."""
    return [
        {
            "label": label,
            "confidence": float(confidence),
            "true_label": label if rng.random() < confidence else "other",
        }
        for label, confidence in zip(features.labels, features.confidences, strict=True)
    ]


@pytest.mark.parametrize("against", ["baseline", "training, reweighted"])
def test_null_windows_at_the_default_configuration_confirm_within_alpha(against: str) -> None:
    """Every detector through the policy at the defaults (alpha 0.01, 1,000 permutations), against
    either kind of reference the check can choose."""
    settings = DriftConfig(embedding_sample=60, min_feedback=30)
    assert settings.alpha == 0.01 and settings.permutations == 1000
    rng = np.random.default_rng(1616)
    training = reference.build("1", _stream(rng, 400), settings.rare_token_count, golden_accuracy=0.9)
    base = reference.baseline(training, _stream(rng, 400), settings.rare_token_count, 0.9, "baseline")
    golden_confidences = rng.beta(9, 1, 300)
    windows, fired, confirmed = 300, 0, 0
    for _ in range(windows):
        window = _stream(rng, 120)
        if against == "baseline":
            ref, golden = base, None
        else:
            ref, golden = reference.reweighted(training, Counter(window.labels)), golden_confidences
        assert ref is not None
        found, _ = signals.detect(settings, ref, _rows(window, rng), window, golden)
        assert {s.name for s in found} >= {"embedding_mmd", "estimated_accuracy", "accuracy"}
        verdict = policy.decide(found, settings.alpha, settings.severe_mmd)
        fired += bool(verdict.fired)
        confirmed += verdict.confirmed
    bound = _bound(windows, settings.alpha)
    assert confirmed <= fired <= bound, (against, fired, confirmed, bound)
