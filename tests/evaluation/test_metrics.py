from pathlib import Path

import pytest

from evaluation.metrics import plot_confusion_matrix, score


def test_scores_match_hand_counts() -> None:
    truth = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "a"]
    scores = score(truth, predicted, ["a", "b", "c"])
    assert scores.accuracy == pytest.approx(3 / 5)
    assert scores.per_class["b"]["precision"] == pytest.approx(2 / 3)
    assert scores.per_class["b"]["recall"] == pytest.approx(1.0)
    assert scores.per_class["c"]["f1"] == 0.0
    # f1: a = 0.5, b = 0.8, c = 0
    assert scores.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert scores.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert scores.flat("golden_")["golden_recall_b"] == pytest.approx(1.0)


def test_absent_class_does_not_drag_macro_f1() -> None:
    scores = score(["a", "b"], ["a", "b"], ["a", "b", "c"])
    assert scores.macro_f1 == 1.0


def test_confusion_matrix_picture(tmp_path: Path) -> None:
    scores = score(["a", "b"], ["a", "a"], ["a", "b"])
    path = plot_confusion_matrix(scores, "test", tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        score(["a", "b"], ["a"], ["a", "b"])
