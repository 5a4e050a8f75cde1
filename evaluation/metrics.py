"""Golden-set metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bertloop.core import constants


@dataclass(frozen=True)
class GoldenScores:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    labels: list[str]
    examples: int

    def headline(self) -> dict[str, float]:
        """The metrics the gate reads, under their constant names."""
        return {constants.METRIC_ACCURACY: self.accuracy, constants.METRIC_MACRO_F1: self.macro_f1}

    def flat(self, prefix: str) -> dict[str, float]:
        """Every number, flattened for MLflow's metric store."""
        metrics = {f"{prefix}{name}": value for name, value in self.headline().items()}
        for label, scores in self.per_class.items():
            for name, value in scores.items():
                metrics[f"{prefix}{name}_{metric_safe(label)}"] = value
        return {key: value for key, value in metrics.items() if not math.isnan(value)}


def score(true_labels: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> GoldenScores:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    if len(true_labels) != len(predicted):
        raise ValueError(f"{len(true_labels)} true labels but {len(predicted)} predictions")
    if not true_labels:
        raise ValueError("cannot score an empty golden set")
    label_list = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_labels, predicted, labels=label_list, zero_division=0
    )
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": float(support[i]),
        }
        for i, label in enumerate(label_list)
    }
    # Macro-F1 over the classes the golden set contains, so an absent class does not count as 0.
    present = sorted(set(true_labels), key=label_list.index)
    return GoldenScores(
        accuracy=float(accuracy_score(true_labels, predicted)),
        macro_f1=float(f1_score(true_labels, predicted, labels=present, average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion_matrix(true_labels, predicted, labels=label_list).tolist(),
        labels=label_list,
        examples=len(true_labels),
    )


def plot_confusion_matrix(scores: GoldenScores, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.6 * len(scores.labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.array(scores.confusion), display_labels=scores.labels).plot(
        ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45
    )
    axes.set_title(f"{title}\naccuracy {scores.accuracy:.3f}, macro-F1 {scores.macro_f1:.3f}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def metric_safe(label: str) -> str:
    return "".join(character if character.isalnum() or character in "_-." else "_" for character in label)
