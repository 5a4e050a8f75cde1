"""Probable label noise: the champion confidently disagrees with a batch's labels far more than usual.

A batch with shuffled or mis-mapped labels passes every schema check, trains a
worse model, and stays in every later snapshot. Before training on a batch, the
current champion scores it. A row where the champion is confident (at least
``confidence``) and disagrees with the given label is a *confident
disagreement*. The champion disagrees confidently on some golden-set items too;
the batch is held as probable label noise only if its rate is above the golden
rate by more than ``margin`` *and* a one-sided Fisher exact test says the
difference is not chance (p below ``alpha``), so a small batch is not condemned
on a handful of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from bertloop.core.config import PlatformConfig


@dataclass(frozen=True)
class NoisePolicy:
    confidence: float = 0.9
    margin: float = 0.10
    alpha: float = 0.01


@dataclass(frozen=True)
class NoiseVerdict:
    noisy: bool
    batch_rate: float
    golden_rate: float
    batch_rows: int
    golden_rows: int
    p_value: float
    examples: list[dict[str, object]] = field(default_factory=list)

    def describe(self) -> str:
        head = (
            f"the champion confidently disagrees with {self.batch_rate:.1%} of this batch's labels "
            f"(n={self.batch_rows}) against {self.golden_rate:.1%} on the golden set (n={self.golden_rows}); "
            f"Fisher exact p={self.p_value:.2g}"
        )
        if not self.noisy:
            return head
        shown = "; ".join(
            f"row {e['row']}: labelled {e['label']!r}, the champion says {e['predicted']!r} "
            f"({float(e['confidence']):.0%})"  # type: ignore[arg-type]
            for e in self.examples[:5]
        )
        return f"probable label noise: {head}; e.g. {shown}. Check how the labels were exported"


def confident_disagreements(
    labels: Sequence[str], predicted: Sequence[str], confidences: Sequence[float], threshold: float
) -> list[int]:
    """Positions where the prediction differs from the label with at least ``threshold`` confidence."""
    return [
        position
        for position, (label, guess, confidence) in enumerate(
            zip(labels, predicted, confidences, strict=True)
        )
        if guess != label and confidence >= threshold
    ]


def judge(
    batch_labels: Sequence[str],
    batch_predicted: Sequence[str],
    batch_confidences: Sequence[float],
    golden_labels: Sequence[str],
    golden_predicted: Sequence[str],
    golden_confidences: Sequence[float],
    policy: NoisePolicy,
    rows: Sequence[int] | None = None,
) -> NoiseVerdict:
    """The verdict on one batch, from the champion's answers on it and on the golden set."""
    from scipy.stats import fisher_exact

    batch_hits = confident_disagreements(batch_labels, batch_predicted, batch_confidences, policy.confidence)
    golden_hits = confident_disagreements(
        golden_labels, golden_predicted, golden_confidences, policy.confidence
    )
    n_batch, n_golden = len(batch_labels), len(golden_labels)
    if n_batch == 0 or n_golden == 0:
        return NoiseVerdict(False, 0.0, 0.0, n_batch, n_golden, 1.0)
    batch_rate, golden_rate = len(batch_hits) / n_batch, len(golden_hits) / n_golden
    table = [[len(batch_hits), n_batch - len(batch_hits)], [len(golden_hits), n_golden - len(golden_hits)]]
    p_value = float(fisher_exact(table, alternative="greater").pvalue)
    noisy = batch_rate - golden_rate > policy.margin and p_value < policy.alpha
    positions = list(rows) if rows is not None else list(range(n_batch))
    examples = [
        {
            "row": positions[i],
            "label": batch_labels[i],
            "predicted": batch_predicted[i],
            "confidence": float(batch_confidences[i]),
        }
        for i in sorted(batch_hits, key=lambda i: -batch_confidences[i])[:20]
    ]
    return NoiseVerdict(noisy, batch_rate, golden_rate, n_batch, n_golden, p_value, examples)


def check_with_champion(
    config: PlatformConfig, batch: pd.DataFrame, golden: pd.DataFrame, policy: NoisePolicy, sample: int
) -> NoiseVerdict | None:
    """Score (a seeded sample of) the batch and the golden set with the current champion; None without one."""
    from modeling.runner import ClassifierRunner
    from registry import mlflow_registry as registry

    client = registry.connect(config)
    champion = registry.current_champion(client, config.registry.model_name)
    if champion is None:
        return None
    runner = ClassifierRunner.from_components(
        *registry.load_version(config.registry.model_name, champion.version), config.training.max_length
    )
    text, label = config.data.text_column, config.data.label_column
    rows = batch.sample(n=sample, random_state=0).sort_index() if len(batch) > sample else batch
    mine = runner.score(rows[text].tolist(), config.training.eval_batch_size)
    theirs = runner.score(golden[text].tolist(), config.training.eval_batch_size)
    return judge(
        rows[label].tolist(), mine.labels, mine.confidences,
        golden[label].tolist(), theirs.labels, theirs.confidences,
        policy, rows=[int(i) for i in rows.index],
    )  # fmt: skip
