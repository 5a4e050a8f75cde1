"""Statistics for comparing two models on the same golden items: intervals, paired tests, sample size.

Champion and candidate answer the *same* golden items, so their errors are
paired. Pairing is what makes a small golden set usable: only the items on
which the two models disagree carry information about their difference.

- :func:`wilson` gives the interval of one proportion (accuracy, a class's recall).
- :func:`mcnemar_exact` tests "same accuracy" on the discordant pairs.
- :func:`bootstrap` resamples golden items (the same resample for both models)
  and yields accuracy, macro-F1 and per-class F1 for each model and resample;
  :func:`compare` turns that into a difference, its interval and a verdict
  against a non-inferiority margin.
- :func:`required_size` says how many golden items would show non-inferiority
  at the margin, with the configured confidence and power, for models that
  disagree as often as these two do.

The interval of a difference is the two-sided percentile interval at the
configured confidence; non-inferiority is shown when its lower end clears
``-margin``, the convention of non-inferiority trials (CONSORT), which makes the
one-sided test run at half the nominal error rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Label positions or golden-item positions: a list or a numpy array.
Indices = Sequence[int] | np.ndarray
NON_INFERIOR, BETTER, WORSE, INCONCLUSIVE = "non-inferior", "better", "worse", "not enough evidence"


@dataclass(frozen=True)
class Interval:
    estimate: float
    lower: float
    upper: float
    n: int
    confidence: float

    def describe(self) -> str:
        """``0.925 (0.890–0.960, n=200)``: how every golden metric is shown."""
        return f"{self.estimate:.3f} ({self.lower:.3f}–{self.upper:.3f}, n={self.n})"


@dataclass(frozen=True)
class Comparison:
    """Candidate minus champion on one metric, on the same golden items."""

    metric: str
    candidate: float
    champion: float
    difference: float
    lower: float
    upper: float
    margin: float
    confidence: float
    n: int
    p_value: float  # of "the candidate is worse by the margin or more" (non-inferiority)
    verdict: str
    mcnemar_p: float | None = None  # of "same accuracy", exact, for accuracy only

    def describe(self) -> str:
        percent = f"{self.confidence:.0%}"
        words = (
            f"{self.metric}: candidate {self.candidate:.4f} vs champion {self.champion:.4f}, "
            f"difference {self.difference:+.4f} ({percent} CI {self.lower:+.4f} to {self.upper:+.4f}, "
            f"n={self.n}); margin {self.margin:.4f}, p={_p(self.p_value)} for 'worse by the margin'"
        )
        if self.mcnemar_p is not None:
            words += f", McNemar exact p={_p(self.mcnemar_p)} for 'same accuracy'"
        return f"{words}: {self.verdict}"


def wilson(successes: int, n: int, confidence: float) -> Interval:
    """Wilson score interval of a proportion; sound at 0 and 1 and for small n, unlike the normal one."""
    if n <= 0:
        return Interval(math.nan, 0.0, 1.0, 0, confidence)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n, confidence)


def mcnemar_exact(candidate_correct: Sequence[bool], champion_correct: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the items exactly one model got right."""
    from scipy.stats import binomtest

    mine, theirs = np.asarray(candidate_correct, bool), np.asarray(champion_correct, bool)
    only_candidate = int((mine & ~theirs).sum())
    only_champion = int((~mine & theirs).sum())
    if only_candidate + only_champion == 0:
        return 1.0
    return float(binomtest(only_candidate, only_candidate + only_champion, 0.5).pvalue)


@dataclass(frozen=True)
class Resampled:
    """Each statistic at the observed data (``point_*``) and per bootstrap resample (rows)."""

    point_accuracy: float
    point_macro_f1: float
    point_class_f1: np.ndarray  # (classes,)
    accuracy: np.ndarray  # (resamples,)
    macro_f1: np.ndarray  # (resamples,)
    class_f1: np.ndarray  # (resamples, classes)


def bootstrap(
    truth: Indices, predictions: Sequence[Indices], classes: int, resamples: int, seed: int
) -> list[Resampled]:
    """Resample the golden items ``resamples`` times; every model sees the same resamples."""
    truth_hot = _one_hot(truth, classes)
    hots = [_one_hot(predicted, classes) for predicted in predictions]
    n = len(truth)
    generator = np.random.default_rng(seed)
    chunks: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in hots]
    for start in range(0, resamples, 256):
        size = min(256, resamples - start)
        weights = generator.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        for model, hot in enumerate(hots):
            chunks[model].append(_statistics(weights, truth_hot, hot))
    results = []
    for model, hot in enumerate(hots):
        point = _statistics(np.ones((1, n)), truth_hot, hot)
        accuracy, macro, per_class = (np.concatenate(parts) for parts in zip(*chunks[model], strict=True))
        results.append(Resampled(point[0][0], point[1][0], point[2][0], accuracy, macro, per_class))
    return results


def compare(
    metric: str,
    candidate: float,
    champion: float,
    differences: np.ndarray,
    margin: float,
    confidence: float,
    n: int,
    mcnemar_p: float | None = None,
) -> Comparison:
    """The verdict on ``candidate - champion`` from its bootstrap distribution ``differences``."""
    tail = (1 - confidence) / 2
    lower, upper = (float(x) for x in np.quantile(differences, [tail, 1 - tail]))
    difference = candidate - champion
    # The share of resamples in which the candidate is worse by the margin (ties count half).
    p_value = float(np.mean(differences < -margin) + 0.5 * np.mean(differences == -margin))
    if lower > 0:
        verdict = BETTER
    elif lower > -margin:
        verdict = NON_INFERIOR
    elif upper < -margin:
        verdict = WORSE
    else:
        verdict = INCONCLUSIVE
    return Comparison(
        metric, candidate, champion, difference, lower, upper, margin, confidence, n, p_value, verdict,
        mcnemar_p,
    )  # fmt: skip


def describe_unjudged(
    metric: str,
    candidate: float,
    champion: float,
    differences: np.ndarray,
    confidence: float,
    n: int,
    mcnemar_p: float,
) -> str:
    """A paired difference stated with its interval and McNemar's test, for a metric the gate has no margin
    for: reported so every evaluation says whether accuracy moved, but it decides nothing."""
    tail = (1 - confidence) / 2
    lower, upper = (float(x) for x in np.quantile(differences, [tail, 1 - tail]))
    difference = candidate - champion
    return (
        f"{metric}: candidate {candidate:.4f} vs champion {champion:.4f}, difference {difference:+.4f} "
        f"({confidence:.0%} CI {lower:+.4f} to {upper:+.4f}, n={n}), McNemar exact p={_p(mcnemar_p)} for "
        f"'same accuracy'; reported, not gated (no {metric} margin in gate.max_regression)"
    )


def bootstrap_interval(values: np.ndarray, point: float, n: int, confidence: float) -> Interval:
    tail = (1 - confidence) / 2
    lower, upper = (float(x) for x in np.quantile(values, [tail, 1 - tail]))
    return Interval(point, lower, upper, n, confidence)


def required_size(
    n: int, differences: np.ndarray, margin: float, confidence: float, power: float
) -> int | None:
    """Golden items needed to show non-inferiority at ``margin`` for two models as different as these.

    The spread of a paired difference shrinks as 1/√n, so from the bootstrap
    standard error at ``n`` the size at which an equal model's interval clears
    ``-margin`` with probability ``power`` is n·((z_conf + z_power)·SE / margin)².
    None: no size is enough (a margin of 0 asks an equal model to be better).
    """
    from scipy.stats import norm

    spread = float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0
    if spread == 0.0:
        return n
    if margin <= 0:
        return None
    z = float(norm.ppf(0.5 + confidence / 2) + norm.ppf(power))
    return math.ceil(n * (z * spread / margin) ** 2)


def _statistics(
    weights: np.ndarray, truth_hot: np.ndarray, predicted_hot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy, macro-F1 (over classes present in the resample) and per-class F1, per weight row."""
    hits = weights @ (truth_hot * predicted_hot)  # (rows, classes): true positives
    support = weights @ truth_hot
    predicted = weights @ predicted_hot
    totals = weights.sum(axis=1)
    accuracy = hits.sum(axis=1) / totals
    denominator = support + predicted
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    present = support > 0
    macro = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return accuracy, macro, f1


def _one_hot(indices: Indices, classes: int) -> np.ndarray:
    values = np.asarray(indices, dtype=np.int64)
    hot = np.zeros((len(values), classes))
    hot[np.arange(len(values)), values] = 1.0
    return hot


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"
