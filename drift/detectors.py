"""Drift detectors: pure functions of a reference sample and a live window, each with a p-value.

Every detector answers with the same shape (statistic, p-value, drifted) and
refuses to alarm below a minimum sample, so the decision that combines them is
sample-size aware by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Signal:
    name: str
    statistic: float
    p_value: float | None
    drifted: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: a statistic that is not finite (a degenerate sample) becomes null."""
        return {
            "name": self.name, "statistic": _finite(self.statistic), "p_value": _finite(self.p_value),
            "drifted": self.drifted, "detail": self.detail,
        }  # fmt: skip


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _ks_signal(
    name: str, reference: ArrayLike, window: ArrayLike, alpha: float, describe: Callable[[Any, Any], str]
) -> Signal:
    """Two-sample Kolmogorov-Smirnov test; ``describe(window, reference)`` says what moved, in words."""
    from scipy.stats import ks_2samp

    reference, window = np.asarray(reference, dtype=float), np.asarray(window, dtype=float)
    result = ks_2samp(reference, window)
    return Signal(
        name, float(result.statistic), float(result.pvalue), bool(result.pvalue < alpha),
        describe(window, reference),
    )  # fmt: skip


def text_length_drift(reference: ArrayLike, window: ArrayLike, alpha: float) -> Signal:
    """Two-sample Kolmogorov-Smirnov test on text lengths (in word pieces)."""
    return _ks_signal(
        "text_length", reference, window, alpha,
        lambda w, r: f"median length {np.median(w):.0f} vs reference {np.median(r):.0f} word pieces",
    )  # fmt: skip


def unknown_token_drift(
    reference_rare: Sequence[int],
    reference_tokens: Sequence[int],
    window_rare: Sequence[int],
    window_tokens: Sequence[int],
    alpha: float,
) -> Signal:
    """One-sided test that the window's texts carry a larger share of unknown or rare word pieces.

    Judged per text (Mann-Whitney U on each text's share), never per word piece: the pieces of one
    text are not independent (an article about a new company repeats its name), and a pooled
    two-proportion test on ~50,000 pieces alarmed on every steady BBC window (p < 1e-6 at a 1.2-point
    difference that texts vary by anyway). The statistic reported is the pooled difference.
    """
    from scipy.stats import mannwhitneyu

    def shares(rare: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        counts, totals = np.asarray(rare, dtype=float), np.asarray(tokens, dtype=float)
        kept = totals > 0
        return counts[kept] / totals[kept]

    ref_shares, win_shares = shares(reference_rare, reference_tokens), shares(window_rare, window_tokens)
    p_ref = float(np.sum(reference_rare)) / max(float(np.sum(reference_tokens)), 1.0)
    p_win = float(np.sum(window_rare)) / max(float(np.sum(window_tokens)), 1.0)
    if len(ref_shares) < 2 or len(win_shares) < 2:
        p_value = float("nan")
    else:
        p_value = float(mannwhitneyu(win_shares, ref_shares, alternative="greater").pvalue)
    return Signal(
        "unknown_tokens", p_win - p_ref, p_value, bool(p_value < alpha),
        f"{p_win:.2%} of word pieces unknown or rare vs {p_ref:.2%} in the reference "
        f"(compared text by text over {len(win_shares)} and {len(ref_shares)} texts)",
    )  # fmt: skip


def mmd_permutation_test(
    reference: np.ndarray, window: np.ndarray, alpha: float, permutations: int, seed: int
) -> Signal:
    """Maximum mean discrepancy (RBF kernel, median bandwidth) with a permutation-calibrated p-value.

    Every permutation is scored at once: with ``a`` the 0/1 rows marking the reference side of each
    permutation, the kernel sums are ``a K a``, ``a K b`` and the rest, one matrix product for all.
    When no permutation reaches the observed statistic, the permutation p-value only says "below
    1/(permutations+1)"; the tail is then read from a normal fitted to the permutation statistics,
    so a shift far beyond the null gets the small p-value that a strict threshold can judge.
    """
    from scipy.stats import norm

    pooled = np.vstack([reference, window]).astype(np.float64)
    squared = np.sum(pooled**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0.0)
    bandwidth = np.median(distances[np.triu_indices_from(distances, k=1)])
    kernel = np.exp(-distances / max(bandwidth, 1e-12))
    n, total = len(reference), len(pooled)
    m = total - n
    generator = np.random.default_rng(seed)
    sides = np.zeros((permutations + 1, total))
    sides[0, :n] = 1.0  # the observed split first
    for row in range(1, permutations + 1):
        sides[row, generator.permutation(total)[:n]] = 1.0
    pulled = sides @ kernel
    within = np.einsum("ij,ij->i", pulled, sides)  # a K a
    across = pulled.sum(axis=1) - within  # a K b
    other = kernel.sum() - within - 2 * across  # b K b
    diagonal = float(np.trace(kernel))  # the same on each side's share for an RBF kernel (all ones)
    # The unbiased estimator: diagonal terms left out.
    statistics = (
        (within - diagonal * n / total) / (n * (n - 1))
        + (other - diagonal * m / total) / (m * (m - 1))
        - 2 * across / (n * m)
    )
    observed, null = float(statistics[0]), statistics[1:]
    exceed = int(np.sum(null >= observed))
    p_value = (exceed + 1) / (permutations + 1)
    if exceed == 0 and null.std() > 0:
        tail = float(norm.sf((observed - null.mean()) / null.std()))
        p_value = min(p_value, max(tail, float(np.finfo(float).tiny)))  # never exactly 0
    return Signal(
        "embedding_mmd", observed, p_value, bool(p_value < alpha),
        f"MMD² {observed:.4f} on sentence embeddings, {permutations} permutations",
    )  # fmt: skip


def label_drift(
    reference_counts: dict[str, int], window_counts: dict[str, int], alpha: float, psi_threshold: float
) -> Signal:
    """Chi-square test of the window's predicted-label counts against the reference mix, with PSI."""
    from scipy.stats import chisquare

    labels = sorted(set(reference_counts) | set(window_counts))
    ref = np.array([reference_counts.get(label, 0) for label in labels], dtype=float) + 0.5
    win = np.array([window_counts.get(label, 0) for label in labels], dtype=float) + 0.5
    expected = ref / ref.sum() * win.sum()
    p_value = float(chisquare(win, expected).pvalue)
    psi = population_stability_index(ref / ref.sum(), win / win.sum())
    return Signal(
        "label_distribution", psi, p_value, bool(p_value < alpha and psi > psi_threshold),
        f"PSI {psi:.3f}; window mix {dict(zip(labels, np.round(win / win.sum(), 3).tolist(), strict=True))}",
    )  # fmt: skip


def population_stability_index(expected: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def confidence_drift(reference: ArrayLike, window: ArrayLike, alpha: float) -> Signal:
    """Two-sample Kolmogorov-Smirnov test on the champion's confidence."""
    return _ks_signal(
        "confidence", reference, window, alpha,
        lambda w, r: f"mean confidence {np.mean(w):.3f} vs reference {np.mean(r):.3f}",
    )  # fmt: skip


def estimated_accuracy_drift(
    window: ArrayLike, reference: ArrayLike | float, alpha: float, margin: float
) -> Signal:
    """Confidence-based performance estimation (CBPE): a calibrated model expects to be right as often
    as its mean confidence says. One-sided Welch test (against a reference sample of confidences) or
    one-sample test (against a known accuracy): is the window's expected accuracy below the
    reference's by more than ``margin``?"""
    from scipy.stats import ttest_1samp, ttest_ind

    window = np.asarray(window, dtype=float)
    if np.ndim(reference) == 0:
        target = float(reference)  # type: ignore[arg-type]
        result = ttest_1samp(window, target - margin, alternative="less")
        where = f"{target:.1%} golden-set accuracy"
    else:
        sample = np.asarray(reference, dtype=float)
        target = float(sample.mean())
        result = ttest_ind(window, sample - margin, equal_var=False, alternative="less")
        where = f"{target:.1%} expected on the reference"
    expected = float(window.mean())
    p_value = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
    return Signal(
        "estimated_accuracy", expected - target, p_value, bool(p_value < alpha),
        f"expected accuracy {expected:.1%} from calibrated confidence vs {where}",
    )  # fmt: skip


def accuracy_drift(
    reference_accuracy: float, correct: int, total: int, alpha: float, margin: float
) -> Signal:
    """One-sided binomial test: is live accuracy below the reference by more than ``margin``?"""
    from scipy.stats import binomtest

    target = max(reference_accuracy - margin, 1e-6)
    p_value = float(binomtest(correct, total, target, alternative="less").pvalue)
    accuracy = correct / total
    return Signal(
        "accuracy", accuracy - reference_accuracy, p_value, bool(p_value < alpha),
        f"live accuracy {accuracy:.1%} on {total} feedback labels vs {reference_accuracy:.1%} reference",
    )  # fmt: skip
