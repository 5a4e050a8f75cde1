"""Reading Trainer's log history back into a learning curve, the kept step and the reason training ended."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from training.stopping import EPOCH_LIMIT, STEP_LIMIT, STOPPED_EARLY, summarise, validation_metrics

HISTORY = [
    {"loss": 1.0, "step": 2, "epoch": 0.5},
    {"eval_macro_f1": 0.5, "eval_loss": 0.9, "step": 4, "epoch": 1.0},
    {"eval_macro_f1": 0.8, "eval_loss": 0.6, "step": 8, "epoch": 2.0},
    {"eval_macro_f1": 0.7, "eval_loss": 0.5, "step": 12, "epoch": 3.0},
    {"eval_macro_f1": 0.8, "eval_loss": 0.7, "step": 16, "epoch": 4.0},
]


def test_the_best_score_picks_the_step_and_ties_keep_the_first() -> None:
    summary = summarise(HISTORY, "macro_f1", 4.0, 16, -1, patience_exhausted=True)
    assert (summary.best_step, summary.best_metric, summary.stop_reason) == (8, 0.8, STOPPED_EARLY)
    assert [point[1] for point in summary.learning_curve] == [4, 8, 12, 16]
    assert "kept step 8" in summary.describe("macro_f1")


def test_loss_is_best_when_lowest() -> None:
    assert summarise(HISTORY, "loss", 4.0, 16, -1, patience_exhausted=False).best_step == 12


@pytest.mark.parametrize(
    ("max_steps", "step", "exhausted", "reason"),
    [(-1, 16, False, EPOCH_LIMIT), (16, 16, False, STEP_LIMIT), (100, 16, True, STOPPED_EARLY)],
)
def test_why_training_ended(max_steps: int, step: int, exhausted: bool, reason: str) -> None:
    assert summarise(HISTORY, "macro_f1", 4.0, step, max_steps, exhausted).stop_reason == reason


def test_without_validation_nothing_is_chosen() -> None:
    summary = summarise(HISTORY[:1], "macro_f1", 1.0, 4, -1, patience_exhausted=False)
    assert summary.best_step is None and summary.learning_curve == ()
    assert "last weights kept" in summary.describe("macro_f1")


def test_validation_metrics_are_accuracy_and_macro_f1() -> None:
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    metrics = validation_metrics(SimpleNamespace(predictions=logits, label_ids=np.array([0, 1, 1, 1])))
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
