"""Validation-driven early stopping: the validation score, and the account of where and why training ended.

Trainer scores the validation split on the recipe's schedule (every epoch, or every
N optimiser steps when an epoch is long) with :func:`validation_metrics`, keeps the
checkpoint with the best ``training.best_model_metric`` among all scores and stops
after ``training.patience`` scores in a row without improvement. :func:`summarise`
reads Trainer's log history back into a :class:`StopSummary` (learning curve,
chosen step, reason) for MLflow and the run's manifest. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

VALIDATION_PREFIX = "validation_"  # how Trainer's eval_* metrics are named in MLflow
STOPPED_EARLY, EPOCH_LIMIT, STEP_LIMIT = "stopped early", "epoch limit", "step limit"


def validation_metrics(prediction: Any) -> dict[str, float]:
    """Accuracy and macro-F1 (over the classes present in the validation rows) of an ``EvalPrediction``."""
    from sklearn.metrics import accuracy_score, f1_score

    logits = (
        prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    )
    predicted = np.asarray(logits).argmax(axis=-1)
    truth = np.asarray(prediction.label_ids)
    present = sorted(set(truth.tolist()))
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, labels=present, average="macro", zero_division=0)),
    }


def greater_is_better(metric: str) -> bool:
    return metric != "loss"


@dataclass(frozen=True)
class StopSummary:
    epochs_run: float
    best_step: int | None  # the step whose weights were kept; None: no validation, the last step's
    best_metric: float | None
    stop_reason: str
    learning_curve: tuple[tuple[float, int, float], ...]  # (epoch, step, metric) per validation score

    def describe(self, metric: str) -> str:
        if self.best_step is None:
            return (
                f"{self.stop_reason} after {self.epochs_run:g} epochs; no validation, the last weights kept"
            )
        scores = len(self.learning_curve)
        return (f"{self.stop_reason} after {self.epochs_run:g} epochs; kept step {self.best_step}, "
                f"the best of {scores} validation score{'s' if scores != 1 else ''} "
                f"({metric} {self.best_metric:.4f})")  # fmt: skip


def summarise(
    log_history: Sequence[Mapping[str, Any]],
    metric: str,
    epochs_run: float,
    global_step: int,
    max_steps: int,
    patience_exhausted: bool,
) -> StopSummary:
    """Where training ended and why, from Trainer's ``state.log_history``."""
    key = f"eval_{metric}"
    curve = tuple(
        (float(entry.get("epoch", 0.0)), int(entry["step"]), float(entry[key]))
        for entry in log_history
        if key in entry
    )
    best: tuple[float, int, float] | None = None
    for point in curve:  # the first of equal scores, as Trainer keeps it
        if best is None or (point[2] > best[2] if greater_is_better(metric) else point[2] < best[2]):
            best = point
    if patience_exhausted:
        reason = STOPPED_EARLY
    elif 0 < max_steps <= global_step:
        reason = STEP_LIMIT
    else:
        reason = EPOCH_LIMIT
    return StopSummary(
        epochs_run=round(epochs_run, 3),
        best_step=best[1] if best else None,
        best_metric=best[2] if best else None,
        stop_reason=reason,
        learning_curve=curve,
    )
