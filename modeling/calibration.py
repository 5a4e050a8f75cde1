"""Whether a model's confidence means what it says: calibration error, reliability bins, temperature.

Training fits a temperature on its validation split and stores it in the model's
config (``bertloop_temperature``); :class:`modeling.runner.ClassifierRunner`
divides the logits by it, so the gateway, the canary and the drift checks all
read calibrated confidences. Evaluation measures the expected calibration error
(ECE) on the golden set, which the temperature never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEMPERATURE_ATTRIBUTE = "bertloop_temperature"
# Temperatures outside this range mean the validation split was degenerate (all one class,
# or perfectly separated); the fit is clamped so one bad split cannot flatten or spike a model.
TEMPERATURE_BOUNDS = (0.05, 20.0)
# Sharpening (T < 1) needs evidence of how wrong the model is: a validation split it answers
# (almost) entirely right drives the likelihood's optimum to the lower bound, which would make every
# later answer look certain (the demo's 30-row splits did: T = 0.05 at 92% golden accuracy). With
# fewer misclassified rows than this, the fit may only soften.
MIN_ERRORS_TO_SHARPEN = 5


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 15
) -> list[ReliabilityBin]:
    """Equal-width confidence bins with their mean confidence and accuracy; empty bins are left out."""
    confidence = np.asarray(confidences, dtype=float)
    hits = np.asarray(correct, dtype=float)
    if confidence.shape != hits.shape:
        raise ValueError(f"{confidence.size} confidences but {hits.size} correctness flags")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-closed bins, with a confidence of exactly 0 in the first one.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    result = []
    for b in range(bins):
        members = index == b
        if members.any():
            result.append(
                ReliabilityBin(
                    lower=float(edges[b]),
                    upper=float(edges[b + 1]),
                    count=int(members.sum()),
                    mean_confidence=float(confidence[members].mean()),
                    accuracy=float(hits[members].mean()),
                )
            )
    return result


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 15
) -> float:
    """Σ over bins of (bin share) × |accuracy − mean confidence|: 0 is perfectly calibrated."""
    total = len(confidences)
    if total == 0:
        raise ValueError("cannot measure calibration on no predictions")
    return float(
        sum(
            b.count / total * abs(b.accuracy - b.mean_confidence)
            for b in reliability_bins(confidences, correct, bins)
        )
    )


def fit_temperature(logits: np.ndarray, labels: Sequence[int]) -> float:
    """The temperature T minimising the negative log-likelihood of ``softmax(logits / T)``.

    Guo et al. (2017), "On Calibration of Modern Neural Networks": one scalar,
    so it changes confidences but never which label wins. Below
    ``MIN_ERRORS_TO_SHARPEN`` misclassified rows, T is fitted within [1, upper bound].
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    scores = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(targets):
        raise ValueError(f"logits of shape {scores.shape} do not match {len(targets)} labels")
    if len(targets) == 0:
        raise ValueError("cannot fit a temperature on an empty validation split")

    def nll(log_t: float) -> float:
        return float(-log_softmax(scores / np.exp(log_t), axis=1)[np.arange(len(targets)), targets].mean())

    errors = int((scores.argmax(axis=1) != targets).sum())
    lowest = TEMPERATURE_BOUNDS[0] if errors >= MIN_ERRORS_TO_SHARPEN else 1.0
    low, high = np.log(lowest), np.log(TEMPERATURE_BOUNDS[1])
    fitted = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(fitted.x))


def temperature_of(model_config: object) -> float:
    """The temperature stored with a model, 1.0 (none) for models trained without one."""
    value = getattr(model_config, TEMPERATURE_ATTRIBUTE, None)
    if value is None:
        return 1.0
    temperature = float(value)
    if not TEMPERATURE_BOUNDS[0] <= temperature <= TEMPERATURE_BOUNDS[1]:
        raise ValueError(
            f"the model's {TEMPERATURE_ATTRIBUTE}={temperature} is outside {TEMPERATURE_BOUNDS}; "
            "its config.json was edited or corrupted: retrain it or remove the attribute"
        )
    return temperature
